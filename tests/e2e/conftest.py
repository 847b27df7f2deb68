"""The production-mode stack, started once for every test that asks for it (tests/support/prod_mode.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prod_mode import ProdMode


@pytest.fixture(scope="session")
def prod_mode() -> Iterator[ProdMode]:
    with ProdMode.started() as started:
        yield started
