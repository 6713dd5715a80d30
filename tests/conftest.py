"""Fixtures shared by several test modules."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "build_book.py"


@pytest.fixture(scope="session")
def real_book_results(tmp_path_factory) -> Path:
    """The run store the real book trains into (see real_book)."""
    return Path(os.environ.get("LT_RESULTS") or tmp_path_factory.mktemp("real_results"))


@pytest.fixture(scope="session")
def real_book(tmp_path_factory, real_book_results):
    """The real book at the smoke profile, built once with the tool `make book` uses, trained afresh so
    that it shows what the current code computes: into $LT_RESULTS where set (`make test` empties its run
    store first, and the chapter notebooks' nbval executions after these tests then find their smoke units
    stored instead of training them a second time: about 3 of make test's minutes), else an empty one."""
    out = tmp_path_factory.mktemp("real") / "_build"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LT_RESULTS", str(real_book_results))
        proc = subprocess.run([sys.executable, str(TOOL), "--profile", "smoke", "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "html"


@pytest.fixture(autouse=True)
def _data_verified_by_this_test_only():
    """What this process's loads verified (lt_core/data/checksums.py, recorded in every stored unit) as it
    was before the test: a test that loads a data set from doctored files must not make the next test's
    units look trained on other data (test_faults_data before test_engine failed that way)."""
    from lt_core.data import checksums
    before = dict(checksums._TRAINED_ON)
    yield
    checksums._TRAINED_ON.clear()
    checksums._TRAINED_ON.update(before)
