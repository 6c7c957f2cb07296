"""edge-qc: an edge runtime for sensor-based quality control and traceability."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-qc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
