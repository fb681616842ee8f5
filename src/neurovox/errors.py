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
