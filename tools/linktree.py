"""Build a symlink tree that lays the repository's folders out as the `edge` import package.

setuptools maps `drivers/`, `rules/`, `ledger/`, `firmware-sim/` and `sync/` into `edge.*` at install
time; mypy does not follow that mapping through the editable-install import hook, so
`make check` type-checks this link tree instead (see docs/design.md, "Layout").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {
    "drivers": "drivers",
    "rules": "rules",
    "ledger": "ledger",
    "firmware_sim": "firmware-sim",
    "office": "office",
    "web": "web",
    "sync": "sync",
}


def main(target: str) -> None:
    """Create `target/edge` with links to every entry of `edge/` plus the mapped folders."""
    out = Path(target).resolve() / "edge"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.mkdir(parents=True)
    for entry in (ROOT / "edge").iterdir():
        if entry.name == "__pycache__":
            continue
        (out / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (out / name).symlink_to(ROOT / folder, target_is_directory=True)


if __name__ == "__main__":
    main(sys.argv[1])
