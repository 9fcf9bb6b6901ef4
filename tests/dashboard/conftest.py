import sys

import pytest


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest makes its script the __main__ module and leaves it there; a later Dask LocalCluster's
    spawned workers re-run __main__, so the test that follows would start workers from a deleted script."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True, scope="module")
def _paper_results_cached(dashboard_cache):
    """Every page here reads the paper scenario's serving results from the disk cache (conftest.py)."""
    return dashboard_cache
