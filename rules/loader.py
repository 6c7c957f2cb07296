"""Rule-file loader (being written)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from edge.rules.model import RuleSet

__all__ = ["load_rules"]


def load_rules(
    paths: Iterable[str | Path], known_points: Collection[str] | None = None
) -> RuleSet:
    """Load and validate rule files (not written yet)."""
    raise NotImplementedError
