"""A recorded run resumes on a machine with an empty run store: export a partial smoke run, delete the store,
resume from the export, and get the masks and numbers of an uninterrupted run."""

import shutil

import pytest
import torch

from lt_core.config import ConfigError
from lt_core.procedures import imp
from lt_core.procedures.base import Unit
from lt_core.runs import executor, recorded
from lt_core.runs.store import RunStore

from test_engine import cfg, tiny  # noqa: F401 (a fixture)

CLOSE = 0.01  # as tests/test_parallel.py allows for another thread count


@pytest.mark.parametrize("rewind", [0, 10])
def test_a_partial_recorded_run_resumes_on_an_empty_store(tiny, tmp_path, rewind):
    full = cfg(levels=3, trials=2, rewind_iteration=rewind)
    partial = cfg(levels=2, trials=2, rewind_iteration=rewind)  # the same run, stopped a level earlier
    assert partial.digest() == full.digest()
    whole = executor.run(full, tmp_path / "whole", log=lambda *_: None)
    executor.run(partial, tmp_path / "first", log=lambda *_: None)
    export = recorded.export(partial, tmp_path / "recorded", tmp_path / "first")
    shutil.rmtree(tmp_path / "first")  # a fresh machine: nothing but what the repository commits
    assert not any(p.suffix == ".pt" and p.stem == "final" for p in export.rglob("*"))  # no weights

    messages = []
    outcome = recorded.resume(full, export, tmp_path / "fresh", log=messages.append)
    # the last finished ticket of each trial (level 2: the level-3 ticket prunes its weights) and the dense
    # network (the level-3 one-shot control prunes it; with rewinding, theta_k comes from training it)
    assert outcome["retrain"] == [Unit(t, level, "ticket") for t in (0, 1) for level in (0, 2)]
    assert len(outcome["imported"]) == len(imp.units(partial)) - 4
    assert "units resumed from" in messages[0]
    store = executor.run(full, tmp_path / "fresh", log=lambda *_: None)

    def by_unit(s):
        return {(u["trial"], u["level"], u["control"], u["draw"]): u for u in s.summaries()}

    a, b = by_unit(whole), by_unit(store)
    assert set(a) == set(b) == {(u.trial, u.level, u.control, u.draw) for u in imp.units(full)}
    for key in a:
        assert a[key]["density"] == b[key]["density"], key
        for field in ("final_test_accuracy", "early_stop_test_accuracy"):
            assert abs(a[key][field] - b[key][field]) <= CLOSE, (key, field)
    for trial in (0, 1):
        for level in range(4):
            unit = Unit(trial, level, "ticket")
            ma, mb = whole.load_tensor(unit, "mask"), store.load_tensor(unit, "mask")
            assert all(torch.equal(ma[n], mb[n]) for n in ma), unit  # the masks, bit for bit
    imported = Unit(0, 1, "random")
    assert "resumed_from" in b[(0, 1, "random", 0)] and "resumed_from" not in b[(0, 3, "ticket", 0)]
    assert store.done(imported)


def test_masks_survive_the_archive_bit_for_bit(tiny, tmp_path):
    c = cfg(levels=2)
    store = executor.run(c, tmp_path / "run", log=lambda *_: None)
    export = recorded.export(c, tmp_path / "rec", tmp_path / "run")
    masks = recorded.read_masks(export)
    assert sorted(masks) == [f"{Unit(0, level, 'ticket').path}/mask" for level in range(3)]  # tickets only
    for level in range(3):
        stored = store.load_tensor(Unit(0, level, "ticket"), "mask")
        assert masks[f"{Unit(0, level, 'ticket').path}/mask"].keys() == stored.keys()
        assert all(torch.equal(masks[f"{Unit(0, level, 'ticket').path}/mask"][n], stored[n]) for n in stored)
    first = (export / recorded.MASKS).read_bytes()
    recorded.export(c, tmp_path / "rec", tmp_path / "run")
    assert (export / recorded.MASKS).read_bytes() == first  # same masks, same bytes


def test_resume_refuses_a_recording_of_other_parameters(tiny, tmp_path):
    c = cfg(levels=1)
    executor.run(c, tmp_path / "run", log=lambda *_: None)
    export = recorded.export(c, tmp_path / "rec", tmp_path / "run")
    with pytest.raises(ConfigError, match=r"records run .* but these parameters name run"):
        recorded.resume(cfg(levels=1, lr=0.01), export, tmp_path / "fresh")
    assert not RunStore(cfg(levels=1, lr=0.01), tmp_path / "fresh").dir.exists()


def test_resume_on_another_kind_of_machine_refuses_to_pair_recorded_masks_with_retrained_weights(tiny, tmp_path,
                                                                                                  monkeypatch):
    """Rewound to k = 10, every recorded level >= 1 started from the dense network's W_k, which resuming
    trains again. On another kind of CPU that W_k is another one, so resuming is refused (one line naming the
    unit, both machines and the way on) before anything is stored; --other-machine resumes anyway. Reset to
    theta_0 with no one-shot control (which prunes the dense network), the kept units read no retrained
    weights, and the same resume goes on anywhere."""
    from lt_core import provenance
    from lt_core.runs.executor import unit_threads
    for rewind, refused in ((10, True), (0, False)):
        controls = ["ticket", "reinit"]
        full = cfg(levels=3, rewind_iteration=rewind, controls=controls)
        partial = cfg(levels=2, rewind_iteration=rewind, controls=controls)
        executor.run(partial, tmp_path / f"first{rewind}", log=lambda *_: None)
        export = recorded.export(partial, tmp_path / f"rec{rewind}", tmp_path / f"first{rewind}")
        with monkeypatch.context() as m:
            m.setattr(provenance, "cpu_kind", lambda: "Another CPU (AVX2)")
            fresh = tmp_path / f"fresh{rewind}"
            if refused:
                with pytest.raises(ConfigError, match=r"trains trial_00/level_00/ticket again, which \d+ recorded "
                                   r"unit\(s\) started from .* would train on Another CPU \(AVX2\).*--other-machine"):
                    recorded.resume(full, export, fresh, log=lambda *_: None)
                assert not any(RunStore(full, fresh).done(u) for u in imp.units(full))
                outcome = recorded.resume(full, export, fresh, log=lambda *_: None, other_machine=True)
            else:
                outcome = recorded.resume(full, export, fresh, log=lambda *_: None)
        assert len(outcome["imported"]) == len(imp.units(partial)) - len(outcome["retrain"])
    # the same kind of machine, but the units would train with another thread count (as `run --workers`
    # or Ray's --cpus-per-unit sets it): refused too
    other = torch.get_num_threads() + 1
    assert unit_threads(1, "ray", other) == other and unit_threads(1) == torch.get_num_threads()
    with pytest.raises(ConfigError, match=rf"\d+ thread\(s\)\) and would train on .*, {other} thread\(s\)\)"):
        recorded.resume(cfg(levels=3, rewind_iteration=10, controls=["ticket", "reinit"]), tmp_path / "rec10",
                        tmp_path / "fresh_threads", log=lambda *_: None, threads=other)


def test_weights_sha256_names_the_network_not_its_file():
    from lt_core.provenance import weights_sha256
    state = {"b.weight": torch.randn(3, 4), "a.weight": torch.randn(5)}
    same = {"a.weight": state["a.weight"].clone(), "b.weight": state["b.weight"].t().contiguous().t()}
    assert weights_sha256(state) == weights_sha256(same)  # key order and memory layout do not matter
    nudged = dict(state, **{"a.weight": state["a.weight"].clone()})
    nudged["a.weight"][2] = torch.nextafter(nudged["a.weight"][2], torch.tensor(10.0))  # one bit of one weight
    assert weights_sha256(nudged) != weights_sha256(state)
    assert weights_sha256({k: v.double() for k, v in state.items()}) != weights_sha256(state)
    assert weights_sha256({"c.weight": state["a.weight"], "b.weight": state["b.weight"]}) != weights_sha256(state)


def _with_recorded_weights(folder, unit: Unit, sha: str):
    """The recording in `folder` as if `unit` had been another network: its final_weights_sha256 replaced,
    the checksums written again (what another machine's recording of the same run would hold)."""
    import hashlib

    import pandas as pd
    summary = pd.read_csv(folder / "summary.csv")
    at = (summary.level == unit.level) & (summary.control == unit.control) & (summary.trial == unit.trial)
    summary.loc[at, "final_weights_sha256"] = sha
    summary.to_csv(folder / "summary.csv", index=False)
    sums = folder / recorded.CHECKSUMS
    sums.write_text("".join(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n"
                            for name in (line.split()[1] for line in sums.read_text().splitlines())))


def test_a_unit_trained_again_must_give_the_network_its_recorded_readers_were_trained_from(tiny, tmp_path):
    """Rewound to k = 10, the recorded levels started from the dense network's W_k, which resuming trains
    again. The recording holds the dense network's weights sha256: trained again here it gives the same
    network, and the run goes on as one. Where it gives another (here: the recording says so), the recorded
    units trained from it are taken out of the store and the run stops in one line; run again, they train
    from this network. A second --resume-from beside the other network is refused; --other-machine keeps
    the recorded ones."""
    full = cfg(levels=3, rewind_iteration=10, controls=["ticket", "reinit"])
    partial = cfg(levels=2, rewind_iteration=10, controls=["ticket", "reinit"])
    first = executor.run(partial, tmp_path / "first", log=lambda *_: None)
    export = recorded.export(partial, tmp_path / "rec", tmp_path / "first")
    dense, level1 = Unit(0, 0, "ticket"), Unit(0, 1, "ticket")
    recorded_sha = first.summary(dense)["final_weights_sha256"]
    rows = recorded.load_recorded(export)[1]
    assert len(recorded_sha) == 64 and rows[rows.control == "ticket"].final_weights_sha256.notna().all()  # weights kept
    # every ticket of level >= 1 started from W_k (its sha256 before the mask), each reinit from its own draw
    starts = {(s["level"], s["control"]): s["start_weights_sha256"] for s in first.summaries()}
    assert len({starts[(level, "ticket")] for level in (1, 2)}) == 1 != len({starts[(1, "ticket")], starts[(0, "ticket")]})
    assert starts[(1, "reinit")] not in (starts[(1, "ticket")], starts[(2, "reinit")])

    same = tmp_path / "same"
    outcome = recorded.resume(full, export, same, log=lambda *_: None)
    assert dense in outcome["retrain"] and (RunStore(full, same).unit_dir(dense) / "expected_weights.json").exists()
    store = executor.run(full, same, log=lambda *_: None)  # bit for bit the same network: no refusal
    assert store.summary(dense)["final_weights_sha256"] == recorded_sha
    assert not (store.unit_dir(dense) / "expected_weights.json").exists()
    assert all(store.done(u) for u in imp.units(full)) and "resumed_from" in store.summary(level1)

    _with_recorded_weights(export, dense, "f" * 64)  # the recording's dense network is another one
    other = tmp_path / "other"
    recorded.resume(full, export, other, log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"trial_00/level_00/ticket trained again is another network than the "
                       r"one .* records .* against ffffffffffff\), so the \d+ recorded units trained from it are "
                       r"taken out .* without --resume-from"):
        executor.run(full, other, log=lambda *_: None)
    store = RunStore(full, other)
    assert store.done(dense) and not any(store.done(u) for u in imp.units(full) if u != dense)
    with pytest.raises(ConfigError, match=r"this run store's trial_00/level_00/ticket is another network than the "
                       r"recorded one .* --other-machine"):
        recorded.resume(full, export, other, log=lambda *_: None)
    assert not store.done(level1)  # refused: nothing imported
    executor.run(full, other, log=lambda *_: None)  # run again: trained from this store's dense network
    assert all(store.done(u) for u in imp.units(full)) and "resumed_from" not in store.summary(level1)
    assert store.summary(level1)["start_weights_sha256"] == starts[(1, "ticket")]  # the same W_k as `first`
    kept = tmp_path / "kept"
    executor.run(cfg(levels=0, rewind_iteration=10, controls=["ticket", "reinit"]), kept, log=lambda *_: None)
    outcome = recorded.resume(full, export, kept, log=lambda *_: None, other_machine=True)
    assert level1 in outcome["imported"]  # beside a dense network the recording says is another one


def test_an_export_names_the_kept_weights_of_units_stored_before_summaries_did(tiny, tmp_path):
    """A unit stored before summaries recorded final_weights_sha256 is named in the export from its stored,
    verified weights; a unit whose weights the store does not keep (a control) stays unnamed."""
    import json

    from lt_core.runs import store as store_module
    c = cfg(levels=1, controls=["ticket", "reinit"])
    store = executor.run(c, tmp_path / "run", log=lambda *_: None)
    dense = Unit(0, 0, "ticket")
    named = store.summary(dense)["final_weights_sha256"]
    path = store.unit_dir(dense) / "summary.json"
    doc = json.loads(path.read_text())
    del doc["final_weights_sha256"]  # as the store wrote it before 2026-12-03, checksum and all
    doc["checksum"] = store_module._summary_checksum(doc)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    assert store.done(dense) and "final_weights_sha256" not in store.summary(dense)
    summary = recorded.load_recorded(recorded.export(c, tmp_path / "rec", tmp_path / "run"))[1]
    by = {(r["level"], r["control"]): r["final_weights_sha256"] for r in summary.to_dict("records")}
    assert by[(0, "ticket")] == named and isinstance(by[(1, "ticket")], str)
    assert not isinstance(by[(1, "reinit")], str)


def test_a_worker_process_that_trains_another_network_stops_the_run_in_one_line(tiny, tmp_path):
    """The same check in `run --workers 2`: the unit trained again in a worker process is compared there, and
    the run stops with the same line, the recorded units trained from it out of the store."""
    full = cfg(levels=2, rewind_iteration=10)
    partial = cfg(levels=1, rewind_iteration=10)
    executor.run(partial, tmp_path / "first", log=lambda *_: None)
    export = recorded.export(partial, tmp_path / "rec", tmp_path / "first")
    _with_recorded_weights(export, Unit(0, 0, "ticket"), "e" * 64)
    recorded.resume(full, export, tmp_path / "other", log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"training .*trial_00/level_00/ticket trained again is another network "
                       r".* against eeeeeeeeeeee\)"):
        executor.run(full, tmp_path / "other", log=lambda *_: None, workers=2)
    store = RunStore(full, tmp_path / "other")
    assert store.done(Unit(0, 0, "ticket")) and not store.done(Unit(0, 1, "ticket"))


def test_a_run_killed_between_a_units_summary_and_its_comparison_compares_it_at_the_next_run(tiny, tmp_path,
                                                                                             monkeypatch):
    """save_unit writes the summary, then compares; a kill in between leaves the unit done with its
    expectation beside it. The next run compares first and stops, the recorded units trained from it out."""
    full = cfg(levels=3, rewind_iteration=10)
    partial = cfg(levels=2, rewind_iteration=10)  # level 1 is imported, the dense network and level 2 retrain
    executor.run(partial, tmp_path / "first", log=lambda *_: None)
    export = recorded.export(partial, tmp_path / "rec", tmp_path / "first")
    _with_recorded_weights(export, Unit(0, 0, "ticket"), "d" * 64)
    recorded.resume(full, export, tmp_path / "other", log=lambda *_: None)

    class Killed(Exception):
        pass

    def killed(self, unit, sha256):
        raise Killed  # the process dies after the summary is written
    with monkeypatch.context() as m:
        m.setattr(RunStore, "_compare_expected", killed)
        with pytest.raises(Killed):
            executor.run(full, tmp_path / "other", log=lambda *_: None)
    store = RunStore(full, tmp_path / "other")
    assert store.done(Unit(0, 0, "ticket")) and store.done(Unit(0, 1, "ticket"))  # the recorded one, imported
    with pytest.raises(ConfigError, match=r"trial_00/level_00/ticket trained again is another network"):
        executor.run(full, tmp_path / "other", log=lambda *_: None)
    assert not store.done(Unit(0, 1, "ticket"))
    executor.run(full, tmp_path / "other", log=lambda *_: None)  # then trained from this store's network
    assert store.done(Unit(0, 3, "ticket")) and "resumed_from" not in store.summary(Unit(0, 1, "ticket"))
