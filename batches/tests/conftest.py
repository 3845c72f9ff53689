from typing import Any

import pytest

from calls.tests.calls_fixtures import *  # noqa: F401,F403 - carrier fakes wired into org A


@pytest.fixture(autouse=True)
def _dial_inline(settings: Any) -> None:
    # In-process tests keep their rows in an uncommitted transaction that the
    # dial threads' own connections could not see; worker subprocesses get
    # their thread count explicitly (test_worker_integration.env).
    settings.BATCHES_DIAL_THREADS = 1
