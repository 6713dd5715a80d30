"""`python -m lt_core bench --quick --synthetic` runs end to end and its JSON has the documented keys.

No speed assertions: the targets are read off the printed ratios, on a quiet machine.
"""

import json
import os

import pytest
import torch

from lt_core.speed import bench

# Both cores, as the bench runs by default: on one of two the conv cases took twice as long (54 s against
# 29 s for conv4, conv6 and resnet20 on the 2-core AVX2 EPYC), and these tests check the cases run and
# report, not their speed. Nothing else trains beside them in `make test`.
THREADS = str(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def keep_threads():
    """--threads is process-wide; later tests keep the default."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_quick_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--", "--quick", "--synthetic", "--threads", THREADS, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert {"conditions", "matmul_gflops", "matmul_gflops_by_library", "lenet_level", "lenet_trial", "conv2", "batched",
            "peak_rss_mb"} <= set(printed)
    assert {"torch", "cpu", "threads", "cpus", "load_average_1min", "repeats"} <= set(printed["conditions"])
    level = printed["lenet_level"]
    assert set(level["steps_per_s"]) == {"reference", "engine_plain", "engine", "engine_train_only", "kernels"}
    for key in ("ratio_engine_vs_reference", "ratio_engine_vs_plain_engine", "train_gflops", "kernels_train_gflops",
                "kernels_fraction_of_matmul_rate",
                "fraction_of_matmul_rate", "peak_rss_mb", "ceiling_steps_per_s", "ceiling_ratio_vs_reference",
                "ceiling_dense_steps_per_s", "ceiling_dense_ratio_vs_reference"):
        assert level[key] > 0, key
    assert level["ceiling_steps_per_s"] >= level["ceiling_dense_steps_per_s"]
    assert printed["matmul_gflops"] == max(printed["matmul_gflops_by_library"].values())
    assert level["fraction_of_blas_matmul_rate"] >= level["fraction_of_matmul_rate"] > 0
    trial = printed["lenet_trial"]
    densities = [v["density"] for v in trial["levels"].values()]
    assert densities[0] == 1.0 and densities == sorted(densities, reverse=True)
    assert trial["ratio_trial_vs_levels_x_dense"] > 0 and all(v["ratio_vs_dense"] > 0 for v in trial["levels"].values())
    # the quick trial (5 levels, 100% .. 41%) has no packed level: the floor is the ratio itself
    assert not any(v["packed"] for v in trial["levels"].values())
    assert trial["ratio_if_packed_levels_were_free"] == pytest.approx(trial["ratio_trial_vs_levels_x_dense"], abs=1e-3)
    conv = printed["conv2"]
    assert set(conv["steps_per_s"]) == {"reference", "engine_contiguous", "engine", "kernels"}
    assert conv["ratio_engine_vs_reference"] > 0 and conv["ratio_channels_last"] > 0
    assert conv["kernels_ratio_vs_reference"] > 0 and conv["eval_images_per_s"] > 0
    assert conv["step_gflop"] == round(CONV2_STEP_FLOP / 1e9, 3)
    for n in (2, 4):
        stacked = printed["batched"][f"n{n}"]
        assert set(stacked["network_steps_per_s"]) == {"separate", "stacked"}
        assert stacked["ratio_stacked_vs_separate"] > 0


# Conv-2, batch 60, by hand: conv 3->64 (forward + weight gradient), conv 64->64 and the three linear layers
# (forward + weight and input gradients): 0.42 + 13.6 + 1.6 GFLOP
CONV2_STEP_FLOP = 60 * 2 * (2 * 1024 * 64 * 27 + 3 * 1024 * 64 * 576 + 3 * (16384 * 256 + 256 * 256 + 2560))


def test_step_flop_counts_conv2_as_by_hand_and_grows_with_depth():
    from lt_core.nets import models
    x = torch.randn(60, 3, 32, 32)
    flop = {n: bench.step_flop(models.build(n, in_shape=(3, 32, 32)), x) for n in ("conv2", "conv4", "conv6")}
    assert flop["conv2"] == CONV2_STEP_FLOP
    assert flop["conv2"] < flop["conv4"] < flop["conv6"]


def test_conv4_and_conv6_cases_report_their_steps_and_evaluation(capsys):
    assert bench.main(["--quick", "--synthetic", "--threads", THREADS, "--cases", "conv4,conv6,resnet20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for name in ("conv4", "conv6", "resnet20"):
        case = printed[name]
        assert case["steps_per_s"]["engine"] > 0 and case["eval_images_per_s"] > 0 and case["step_gflop"] > 0
        assert case["eval_ratio_chunk_vs_2000"] > 0


def test_conv_settings_case_reports_every_setting(monkeypatch, capsys):
    """The case's bookkeeping, with torch.compile stubbed out (compiling four nets takes minutes)."""
    monkeypatch.setattr(torch, "compile", lambda model: model)
    assert bench.main(["--quick", "--synthetic", "--threads", THREADS, "--cases", "conv_settings"]) == 0
    printed = json.loads(capsys.readouterr().out)["conv_settings"]
    settings = {"contiguous", "channels_last", "contiguous+compile", "channels_last+compile"}
    for name in ("conv2", "conv4", "conv6", "resnet20"):
        assert set(printed[name]["ms_per_step"]) == settings and all(printed[name]["ms_per_step"].values())
        assert printed[name]["speedup_vs_contiguous"]["contiguous"] == 1.0


def test_train_only_timing_refuses_evaluations_among_the_steps():
    """A train-only rate with evaluations inside the timed span would understate the training FLOP rate."""
    from lt_core.nets import models
    from lt_core.config import make
    from lt_core.sparsity.masks import Mask
    model = models.build("lenet_300_100", seed=0)
    with pytest.raises(ValueError, match="eval_every"):
        bench.run_engine(model, Mask.ones_like(model), None, make({"iterations": 50, "eval_every": 10}),
                         train_only=True)


def test_workers_case_reports_networks_per_hour_both_ways(capsys):
    """Real MNIST (each worker process loads it): two trials of 5 levels x 60 steps, once each way."""
    assert bench.main(["--quick", "--cases", "workers", "--threads", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)["workers"]
    assert printed["networks"] == 10 and printed["steps"] == 60
    assert set(printed["networks_per_hour"]) == {"processes_1", "processes_2"}
    assert all(v > 0 for v in printed["networks_per_hour"].values()) and printed["ratio_2_vs_1"] > 0


def test_edge_popup_case_times_both_steps_of_each_net(capsys):
    assert bench.main(["--quick", "--synthetic", "--threads", THREADS, "--cases", "edge_popup"]) == 0
    printed = json.loads(capsys.readouterr().out)["edge_popup"]
    for name in ("lenet_300_100", "conv2"):
        ms = printed[name]["ms_per_step"]
        assert set(ms) == {"dense_sgd", "edge_popup"} and all(v > 0 for v in ms.values())
        assert printed[name]["ratio_edge_popup_vs_dense"] == pytest.approx(ms["edge_popup"] / ms["dense_sgd"], abs=0.01)


def test_the_gpu_check_script_dry_run_writes_its_one_folder(tmp_path):
    """tools/gpu_check.sh with GPU_CHECK_DEVICE=cpu: the CUDA tests against the CPU and the device benchmark,
    all of it under the folder it is given (on a GPU the same script measures the GPU)."""
    import subprocess
    import sys
    from lt_core.provenance import REPO
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "PY": sys.executable, "OMP_NUM_THREADS": THREADS}
    run = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"conditions.txt", "cuda_tests.txt", "bench_device.json",
                                                    "bench_device.log"}
    assert "exit status 0" in (tmp_path / "cuda_tests.txt").read_text()
    assert "passed" in (tmp_path / "cuda_tests.txt").read_text()
    measured = json.loads((tmp_path / "bench_device.json").read_text())["device"]
    assert measured["device"] == "cpu" and measured["stack"] == [2]  # the dry run's; a GPU's: 2, 4, 8, 16
    lenet = measured["lenet_300_100"]
    assert lenet["one_at_a_time"]["networks_per_hour_at_50000"] > 0
    assert lenet["stacked_2"]["ratio_vs_one_at_a_time"] > 0 and measured["conv2"]["stacked_2"]["network_steps_per_s"] > 0
    assert measured["conv2"]["networks_per_hour_at_20000_estimate"] > 0
    assert "code_version" in (tmp_path / "conditions.txt").read_text()


def test_channel_search_case_prices_the_params_files_own_runs(capsys):
    """The rate is of the early-bird search's own step (batch 64 from its params file), and the two costs
    are the paper's and the short profile's iterations at that rate (160 and 20 epochs of 703 steps)."""
    assert bench.main(["--quick", "--synthetic", "--threads", THREADS, "--cases", "channel_search"]) == 0
    printed = json.loads(capsys.readouterr().out)["channel_search"]
    assert printed["steps"] == 4 and printed["batch"] == 64 and printed["steps_per_s"] > 0
    hours = lambda steps: steps / printed["steps_per_s"] / 3600
    assert printed["hours_at_160_epochs"] == pytest.approx(hours(112500), abs=0.051)
    assert printed["hours_at_20_epochs"] == pytest.approx(hours(14060), abs=0.051)


def test_memory_case_measures_each_phase_in_two_fresh_processes(capsys):
    """Two child processes (glibc's malloc as it comes, a fixed mmap threshold), each through every phase of a
    ResNet-20 unit on random CIFAR-shaped images: phases in order, each phase's peak at least its resident set
    at its end, the float32 images four times their uint8 bytes, the threshold really set in the second."""
    assert bench.main(["--quick", "--synthetic", "--threads", THREADS, "--cases", "memory"]) == 0
    printed = json.loads(capsys.readouterr().out)["memory"]
    assert set(printed["runs"]) == {"malloc_default", "mmap_threshold_1mb"} and printed["steps"] == 4
    for name, run in printed["runs"].items():
        names = [p["phase"] for p in run["phases"]]
        assert names[0].startswith("python, torch") and names[1].startswith("CIFAR-10 read")
        assert "4 training steps" in names[4] and len(names) == 6
        assert all(p["peak_mb"] >= p["rss_mb"] > 0 for p in run["phases"])
        assert run["images"] == 1800 and run["images_mb"]["float32_normalised"] == pytest.approx(
            4 * run["images_mb"]["uint8_read"], abs=0.2)
        assert printed["peak_mb"][name] == max(p["peak_mb"] for p in run["phases"])
    assert printed["runs"]["mmap_threshold_1mb"]["mmap_threshold"] == str(1 << 20)
    assert printed["runs"]["malloc_default"]["mmap_threshold"] == "glibc's dynamic default"
