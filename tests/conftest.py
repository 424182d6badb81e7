"""Shared test helpers: fixture paths and the real data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
#: ../shared/data beside the checkout (real SAR data); tests that need more than the committed
#: fixtures use it when present.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
S1_VV_DB = FIXTURES / "s1_vv_db" / "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES
