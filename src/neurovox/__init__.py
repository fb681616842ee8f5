"""neurovox: decode speech from intracranial brain recordings and measure how well it did."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurovox")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from neurovox.errors import ConfigError, DataError, NeurovoxError  # noqa: E402

__all__ = ["__version__", "NeurovoxError", "DataError", "ConfigError"]
