"""edge-qc: an edge runtime for sensor-based quality control and traceability."""

__all__ = ["__version__"]

#: The package's version, as pyproject.toml says (tests/edge/test_packaging.py holds them
#: equal). Written here, not looked up: importlib.metadata (with zipfile and csv) is ~1 MB
#: resident and ~60 ms at import in every process that asks, the running node among them.
__version__ = "0.1.0"
