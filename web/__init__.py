"""``edge serve``: the quality office's read-only web view of the ledger (issue 15).

Lots (search, sort, pages), a lot's cross-gateway timeline, checks, aggregates with Cp/Cpk,
control charts, open alarms, feeds with their heads and verification, and the downloads (CSV,
EPCIS 2.0, lot report HTML/PDF, proof bundle, analysis database). See docs/guide/quality-manager.md and
docs/design.md ("The quality office web view"). Nothing here is imported by ``edge run``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.web.app import Settings, WebApp
    from edge.web.serve import check_access, parse_listen, run_server

_HOMES = {
    "Settings": "app",
    "WebApp": "app",
    "check_access": "serve",
    "parse_listen": "serve",
    "run_server": "serve",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edge.web' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"edge.web.{home}"), name)


__all__ = ["Settings", "WebApp", "check_access", "parse_listen", "run_server"]
