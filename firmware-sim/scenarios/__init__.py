"""Scenario files shipped with edge-qc (YAML)."""
