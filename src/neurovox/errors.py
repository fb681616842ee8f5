"""The library's own exception types.

Every error a user can cause (bad file, bad config, bad argument) is raised as a subclass of
`NeurovoxError`, so the CLI can print the message without a traceback and tests can check
that no other exception escapes. Messages say what is wrong, where, and what to do.
"""


class NeurovoxError(Exception):
    """Base class of every error a user can cause."""


class DataError(NeurovoxError, ValueError):
    """Input data is malformed: wrong shape, non-finite samples, clocks that disagree..."""


class FormatError(DataError):
    """A file cannot be read as the format it claims (truncated, missing keys, not HDF5...)."""


class ConfigError(NeurovoxError, ValueError):
    """A configuration key or value is invalid."""


class RunError(NeurovoxError):
    """A run directory is missing, incomplete, finished already, or from an incompatible version."""


class ResourceError(NeurovoxError):
    """A computation will not fit in the memory available (a model, a window, a batch); the message
    gives the estimate, what is available and which settings to reduce."""


class Terminated(BaseException):
    """SIGTERM (a cluster's scheduler, `kill`): raised at once from the CLI's signal handler. A BaseException, so
    that no `except Exception` on the way swallows it; every output is written atomically, and training
    resumes from its last checkpoint when the command is rerun."""


class Interrupted(BaseException):
    """Ctrl+C (SIGINT), raised from the CLI's handler instead of KeyboardInterrupt: Lightning catches
    KeyboardInterrupt itself and exits with status 1 (and leaves Ctrl+C ignored); this passes through it.
    Long-running loops that end on Ctrl+C by design (`neurovox stream`, `listen`) catch it to finish cleanly."""
