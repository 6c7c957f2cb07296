"""edge-qc: an edge runtime for sensor-based quality control and traceability."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # The version is looked up on first use: importlib.metadata costs ~60 ms at import, paid by
    # every process that imports anything from edge (verify's worker processes among them).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("edge-qc")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "0.0.0+unknown"
        globals()["__version__"] = found  # looked up once; later reads find the attribute
        return found
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
