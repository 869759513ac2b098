"""scrubber: the sender side of a hashed Do-Not-Email registry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scrubber")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
