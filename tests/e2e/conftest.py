"""The production-mode stack, started once for the tests that ask for it (tests/support/prod_mode.py).

It is a package fixture, not a session one: it stops once the last test of ``tests/e2e`` that
ran has finished, instead of ticking its sensors through the rest of ``make test``. The tests
that use it run last in this package, the fault tests first and ``test_production_mode.py``
at the very end, because that test checks that the marts count every upload the session's
API accepted, the fault tests' included (``PRODUCTION_ORDER``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prod_mode import ProdMode

HERE = Path(__file__).resolve().parent
#: The modules on the production-mode stack, in the order they run (after every other e2e test).
PRODUCTION_ORDER = ("test_production_faults.py", "test_production_mode.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within this package, the production-mode modules last and in ``PRODUCTION_ORDER`` (whatever
    order the command line named them in); every other test keeps its place."""

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path))
        if path.parent != HERE or path.name not in PRODUCTION_ORDER:
            return -1
        return PRODUCTION_ORDER.index(path.name)

    ours = [i for i, item in enumerate(items) if Path(str(item.path)).parent == HERE]
    if not ours:
        return
    # Sort the package's items in place (they are contiguous when collected); a stable sort keeps
    # the collection order within each rank.
    block = sorted((items[i] for i in ours), key=rank)
    for i, item in zip(ours, block, strict=True):
        items[i] = item


@pytest.fixture(scope="package")
def prod_mode() -> Iterator[ProdMode]:
    with ProdMode.started() as started:
        yield started
