# noqa: N999  (the folder name is fixed by the design card; it installs as edge.firmware_sim)
"""Scenario files shipped with edge-qc (YAML)."""
