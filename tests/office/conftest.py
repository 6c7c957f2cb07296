"""The session's lot ledger (built by tests/helpers/office_lot.py)."""

from __future__ import annotations

import pytest
from office_lot import LotLedger, build_lot_ledger


@pytest.fixture(scope="session")
def lot_ledger(tmp_path_factory: pytest.TempPathFactory) -> LotLedger:
    return build_lot_ledger(tmp_path_factory.mktemp("office"))
