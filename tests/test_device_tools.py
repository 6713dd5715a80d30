"""tools/device_runs.sh, the recorded runs of a lent GPU session brought back as one archive, dry-run on the
CPU: a run is exported from its store (a run cut short by the time budget as far as it got: a partial
recording resumes anywhere), a transfer's source beside it, and a run with nothing stored records nothing."""

import os
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from lt_core.data.datasets import data_root, find_dir
from lt_core.provenance import REPO


@pytest.mark.skipif(find_dir("mnist", data_root()) is None or find_dir("fashion_mnist", data_root()) is None,
                    reason="MNIST or Fashion-MNIST not fetched: run `python -m lt_core data fetch`")
def test_device_runs_brings_back_recordings_as_one_archive(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "RESULTS": str(tmp_path / "results"), "DEVICE": "cpu",
           "PY": sys.executable, "OMP_NUM_THREADS": "1", "STACK": "2"}
    tool = ["bash", str(REPO / "tools" / "device_runs.sh")]
    # 70 s, of which 60 are kept for the exports: no time to train, and nothing stored is nothing recorded
    none = subprocess.run([*tool, "70", "params/lenet_mnist.yaml:smoke:never"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert none.returncode == 0, none.stderr
    log = (tmp_path / "out" / "device_runs.log").read_text()
    assert "no time left to train" in log and "never: no unit stored" in log
    with tarfile.open(tmp_path / "out" / "recorded.tgz") as archive:
        assert [m.name for m in archive.getmembers()] == ["."]
    run = subprocess.run([*tool, "600", "params/transfer_lenet.yaml:smoke:transfer_try:transfer_source_try"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert "up to 2 stacked" in (tmp_path / "out" / "device_runs.log").read_text()  # STACK reaches `run --stack`
    with tarfile.open(tmp_path / "out" / "recorded.tgz") as archive:
        archive.extractall(tmp_path / "back", filter="data")
    names = {p.name for p in (tmp_path / "back").iterdir()}
    assert names == {"transfer_try", "transfer_source_try"}
    summary = pd.read_csv(tmp_path / "back" / "transfer_source_try" / "summary.csv")
    assert set(summary.control) == {"ticket"} and set(summary.device) == {"cpu"}
    assert len(pd.read_csv(tmp_path / "back" / "transfer_try" / "summary.csv")) == 7  # the whole smoke run (3 transferred, 2 + 2 controls)
