"""Recorded runs: the small, committable copy of a long run (`book/recorded/<name>/`), and resuming one.

A recorded run (`export`) is a folder with config.json, summary.csv, curves.csv.gz and masks.zip: no
weights, with the code version, machine, date and seeds of every unit inside summary.csv. masks.zip holds,
bit-packed and compressed, the masks the procedure says a run needs to go on (`resume_tensors`; IMP: each
ticket's): a LeNet-300-100 level is 33 KB packed, less compressed. checksums.sha256, written last (the format
of `sha256sum -c`), lists the sha256 of the other four; `load_recorded` and `resume` verify them, so that a
copy cut short or edited is refused with the file's name. A recording without it (exported before checksums
were written, like book/recorded/lenet_mnist_paper) is read unverified.

`resume` puts a recorded run into an empty (or partial) run store, so that `run --resume-from DIR` on a
fresh machine trains only what the recording lacks. Weights are never recorded, so the units whose trained
weights a missing unit reads (`reads_weights`; IMP: the last finished ticket of each trial, and the dense
network when a one-shot control is missing or the run rewinds to theta_k) are trained again rather than
imported; so is a unit whose masks the recording lacks. Each unit whose weights the store keeps is named by
their `final_weights_sha256` in summary.csv, and `resume` makes the run check that a unit trained again for
recorded ones gives that network again (lt_core/runs/store.py).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import ConfigError, Experiment
from ..procedures.base import Unit, procedure_for
from ..provenance import REPO, weights_sha256
from .executor import Job, trained_from
from .results import load
from ..data.files import clean_temporaries, sha256
from .store import DamagedError, RunStore, atomic_write

MASKS = "masks.zip"
CHECKSUMS = "checksums.sha256"


def export(cfg: Experiment, dest: str | Path, root=None, every: int = 1) -> Path:
    """Write the small, committable copy of a run: config, summary, curves (every `every`-th evaluation)."""
    dest = Path(dest)
    curves, summary = load(cfg, root)
    summary = _weights_named(summary, RunStore(cfg, root))
    if every > 1:
        keep = (curves.iteration % (every * cfg.eval_every) == 0) | (curves.iteration == cfg.iterations)
        curves = curves[keep]
    doc = {"digest": cfg.digest(), "config": cfg.to_dict()}
    payloads = {"config.json": json.dumps(doc, indent=1, sort_keys=True).encode(),
                "summary.csv": summary.to_csv(index=False).encode(), "curves.csv.gz": _gzip_csv(curves),
                MASKS: _mask_archive(cfg, RunStore(cfg, root))}
    if dest.is_dir():
        clean_temporaries(dest)  # of an export killed before
    for name, payload in payloads.items():
        atomic_write(dest / name, payload)
    atomic_write(dest / CHECKSUMS, "".join(f"{sha256(payload)}  {name}\n" for name, payload in payloads.items()))
    return dest


def _weights_named(summary: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    """The summary with the `final_weights_sha256` of every unit whose weights the store keeps, computed
    from them (verified) where the unit was stored before summaries recorded it; so that resuming from the
    recording checks those networks when it trains them again."""
    if summary.empty:
        return summary
    known = summary.get("final_weights_sha256", pd.Series(None, index=summary.index, dtype=object))
    named = [sha if isinstance(sha, str) else
             weights_sha256(store.load_tensor(_unit(row), "final")) if store.has(_unit(row), "final") else None
             for sha, row in zip(known, summary.to_dict("records"))]
    if not any(named):
        return summary
    return summary.assign(final_weights_sha256=named)


def _verified_files(folder: Path) -> None:
    """Check a recording's files against its checksums.sha256 (if it has one); DamagedError names the file."""
    listing = folder / CHECKSUMS
    if not listing.exists():
        return  # exported before checksums were written: read as it is
    fix = f"export it again (`python -m lt_core results PARAMS --export {folder}`) or restore it from git"
    for line in listing.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            raise DamagedError(path, f"missing (listed in {CHECKSUMS})", fix)
        if sha256(path.read_bytes()) != digest:
            raise DamagedError(path, f"does not match its sha256 in {CHECKSUMS} (cut short or edited)", fix)


def _mask_archive(cfg: Experiment, store: RunStore) -> bytes:
    """A zip of the kept masks: per unit and tensor name, the mask's bits (np.packbits, row-major) as .npy,
    and index.json with each tensor's shape. Entries carry a fixed date, so equal masks give equal bytes."""
    procedure, index, buffer = procedure_for(cfg), {}, io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        def put(name: str, payload: bytes) -> None:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload,
                             compress_type=zipfile.ZIP_DEFLATED)
        for unit in procedure.units():
            if not store.done(unit):
                continue
            for kind in procedure.resume_tensors(unit):
                for name, bits in store.load_tensor(unit, kind).items():
                    key = f"{unit.path}/{kind}/{name}"
                    index[key] = list(bits.shape)
                    packed = io.BytesIO()
                    np.save(packed, np.packbits(bits.numpy().astype(bool).ravel()))
                    put(key + ".npy", packed.getvalue())
        put("index.json", json.dumps(index, indent=0, sort_keys=True).encode())
    return buffer.getvalue()


def read_masks(folder: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """'<unit path>/<kind>' -> {tensor name: bool tensor} from a recorded run's masks.zip ({} if none)."""
    path = Path(folder) / MASKS
    if not path.exists():
        return {}
    out: dict[str, dict[str, torch.Tensor]] = {}
    with zipfile.ZipFile(path) as archive:
        for key, shape in json.loads(archive.read("index.json")).items():
            bits = np.load(io.BytesIO(archive.read(key + ".npy")))
            flat = np.unpackbits(bits, count=math.prod(shape)).astype(bool)
            unit_kind, name = key.rsplit("/", 1)
            out.setdefault(unit_kind, {})[name] = torch.from_numpy(flat.reshape(shape))
    return out


def first_layers(folder: str | Path, kind: str = "mask") -> dict[Unit, np.ndarray]:
    """Unit -> its mask of the first prunable tensor (LeNet: 300 x 784 bools), for every unit of a recorded
    run whose masks.zip holds one: the mask pictures of the chapters."""
    from .store import _unit_of
    out = {}
    for key, tensors in read_masks(folder).items():
        unit_path, _, what = key.rpartition("/")
        unit = _unit_of(Path(unit_path))
        if what == kind and unit is not None:
            out[unit] = next(iter(tensors.values())).numpy().astype(bool)
    return out


def _gzip_csv(frame: pd.DataFrame) -> bytes:
    """Five significant digits, and mtime 0 so the same table gives the same bytes."""
    return gzip.compress(frame.to_csv(index=False, float_format="%.5g").encode(), mtime=0)


def load_recorded(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(curves, summary, config document) of a recorded run written by `export`."""
    folder = Path(folder)
    if not (folder / "summary.csv").exists():
        raise FileNotFoundError(f"no recorded run in {folder} (expected summary.csv, curves.csv.gz, config.json)")
    _verified_files(folder)
    doc = json.loads((folder / "config.json").read_text())
    return pd.read_csv(folder / "curves.csv.gz"), pd.read_csv(folder / "summary.csv"), doc


def folder_of(name: str) -> Path:
    """book/recorded/<name>: where the recorded run of that name is committed."""
    return REPO / "book" / "recorded" / name


def recorded(name: str, folder: str | Path | None = None):
    """(curves, summary, config document) of book/recorded/<name>, or None when it is not there."""
    path = Path(folder) if folder else folder_of(name)
    return load_recorded(path) if (path / "summary.csv").exists() else None


def describe_recorded(summary: pd.DataFrame, doc: dict) -> str:
    """What a recorded run covers, next to what its configuration asks for."""
    cfg = doc["config"]
    per_control = summary.groupby("control").size().to_dict()
    versions = sorted(summary.code_version.dropna().unique()) if "code_version" in summary else []
    lines = [f"run {doc['digest']}: {cfg['iterations']} iterations per network, batch {cfg['batch_size']}, "
             f"{cfg['optimizer']} lr {cfg['lr']}, evaluation every {cfg['eval_every']}",
             f"trials present: {sorted(int(t) for t in summary.trial.unique())} (of {cfg['trials']} asked); levels 0-"
             f"{summary.level.max()} (of {cfg['levels']}), lowest density {100 * summary.density.min():.1f}%",
             "networks per control: " + ", ".join(f"{k} {v}" for k, v in sorted(per_control.items())),
             f"code versions: {', '.join(versions)}; finished {summary.finished.min()} .. {summary.finished.max()}"]
    return "\n".join(lines)


def _unit(row) -> Unit:
    return Unit(int(row["trial"]), int(row["level"]), str(row["control"]), int(row["draw"]))


def _plain(value):
    """A summary.csv cell as summary.json had it (numpy scalars to Python, NaN to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def resume_all(cfg: Experiment, folders: list, root=None, log=print, other_machine: bool = False,
               threads: int | None = None) -> None:
    """`run --resume-from DIR [--resume-from DIR ...]`: each recording into the store of the experiment whose
    run it records, this one or one of its sources (a transfer's source IMP run is recorded on its own);
    this experiment's first, so that a source also trains again the units whose weights this experiment's
    missing units read (a transfer's theta_k: weights are never recorded)."""
    procedure = procedure_for(cfg)
    known = {cfg.digest(): (cfg, "")} | {s.digest(): (s, name) for name, s in procedure.sources().items()}
    chosen = {}
    for folder in folders:
        digest = _recorded_digest(Path(folder))
        if digest not in known:
            names = ", ".join(f"{c.experiment} [{d}]" for d, (c, _) in known.items())
            raise ConfigError(f"{folder} records run {digest}, but these parameters name {names}: resume with "
                              "the parameters it was recorded with (its config.json), changing only trials, "
                              "levels or controls")
        chosen[digest] = folder
    if cfg.digest() in chosen:
        resume(cfg, chosen.pop(cfg.digest()), root, log, other_machine=other_machine, threads=threads)
    store = RunStore(cfg, root)
    missing = [u for u in procedure.units() if not store.done(u)]
    for digest, folder in chosen.items():
        source, name = known[digest]
        reads = {need.own() for u in missing for need in procedure.reads_weights(u) if need.experiment == name}
        # this experiment's stored units trained from the source's weights (a transfer's tickets from its
        # theta_k): readers of those units too, in another store, if the source trains them again
        elsewhere: dict[Unit, list[str]] = {}
        for unit in procedure.units():
            if store.done(unit):
                for need in procedure.reads_weights(unit, masks_known=True):
                    if need.experiment == name:
                        elsewhere.setdefault(need.own(), []).append(str(store.unit_dir(unit)))
        resume(source, folder, root, log, also_retrain=reads, other_machine=other_machine, threads=threads,
               readers_elsewhere=elsewhere)


def _recorded_digest(folder: Path) -> str:
    try:
        return json.loads((folder / "config.json").read_text()).get("digest")
    except (OSError, ValueError) as error:
        raise ConfigError(f"{folder} is not a recorded run (no readable config.json: {error}); name a folder "
                          "under book/recorded") from None


def _machine(row) -> tuple[str, str, str]:
    """What decides whether training again gives the same weights: CPU kind, torch, threads."""
    threads = row.get("threads")
    try:
        threads = int(float(threads))  # a summary.csv column with gaps reads as floats
    except (TypeError, ValueError):
        pass
    return str(row.get("cpu")), str(row.get("torch")), str(threads)


def _same_machine_or_refuse(folder: Path, procedure, rows: dict, kept: set, retrain: set, threads: int,
                            elsewhere: dict | None = None) -> None:
    """Refuse to resume where a recorded unit that kept (imported) units started from or were measured
    against must be trained again (with `threads` torch threads) on another kind of machine than the one
    that trained it: its weights would differ (another CPU kind or thread count sums in another order, and an
    unstable network turns that into another trajectory), and the resumed run would pair the recorded masks
    with another network's weights."""
    from .. import provenance
    here = (provenance.cpu_kind(), torch.__version__, str(threads))
    readers = {need: list(paths) for need, paths in (elsewhere or {}).items()}  # another experiment's units
    for unit in kept:
        for need in procedure.reads_weights(unit, masks_known=True):
            readers.setdefault(need, []).append(unit)
    for unit in sorted(set(readers) & retrain):
        there = _machine(rows[unit])
        if there != here:
            raise ConfigError(
                f"{folder}: resuming trains {unit.path} again, which {len(readers[unit])} recorded unit(s) "
                f"started from or were measured against; it was trained on {there[0]} (torch {there[1]}, "
                f"{there[2]} thread(s)) and would train on {here[0]} (torch {here[1]}, {here[2]} thread(s)), "
                "where its weights will differ, so the recorded masks would meet another network's weights: "
                "resume on the recorded kind of machine with that torch and thread count (--workers and "
                "--cpus-per-unit set the threads), or pass --other-machine to resume anyway")


def _expect_recorded_weights(folder: Path, procedure, store: RunStore, rows: dict, complete: set,
                             retrain: set, elsewhere: dict | None = None) -> None:
    """For each unit to train again that recorded units were trained from: the recorded sha256 of its weights,
    which its training must give again (RunStore.expect_weights; recordings before it have none). A unit this
    store already holds is compared now: resuming beside another network than the recorded one is refused.
    `elsewhere`: unit -> folders of another experiment's stored units trained from it (a transfer's)."""
    job, expected = {"": Job(procedure, store)}, []
    for unit in sorted(retrain):
        recorded_sha = rows[unit].get("final_weights_sha256")
        readers = sorted(trained_from(job, {unit}) & complete)
        others = (elsewhere or {}).get(unit, [])
        if not isinstance(recorded_sha, str) or not (readers or others):
            continue
        if not store.done(unit):
            expected.append((unit, recorded_sha, readers, others))
            continue
        stored_sha = store.summary(unit).get("final_weights_sha256")
        if stored_sha is not None and stored_sha != recorded_sha:
            raise ConfigError(
                f"{folder}: this run store's {unit.path} is another network than the recorded one (weights "
                f"sha256 {stored_sha[:12]} against {recorded_sha[:12]}), and {len(readers) + len(others)} recorded units were "
                "trained from the recorded one: run without --resume-from to train them from this store's, or "
                "pass --other-machine to keep the recorded ones beside it")
    for unit, recorded_sha, readers, others in expected:  # written once nothing is refused
        store.expect_weights(unit, recorded_sha, readers, str(folder), others)


def resume(cfg: Experiment, folder: str | Path, root=None, log=print,
           also_retrain: set[Unit] = frozenset(), other_machine: bool = False,
           threads: int | None = None, readers_elsewhere: dict | None = None) -> dict[str, list[Unit]]:
    """Put the recorded run in `folder` into the run store of `cfg` (units it already holds are left as
    they are). Returns {"imported": [...], "retrain": [...]}: the recorded units stored now, and the
    recorded units left to train again because a missing unit reads their weights (or another experiment's
    does: `also_retrain`) or their masks were not recorded. `executor.run` then trains these and every unit
    the recording lacks. Refused (ConfigError, nothing stored) where a unit the kept ones read would train
    again on another CPU kind, torch or thread count (`threads`: what it will train with, default this
    process's) than it was trained on, unless `other_machine`. `readers_elsewhere`: unit -> folders of
    another experiment's stored units trained from its weights (resume_all's, for a transfer's source),
    checked and, on another network, taken out as this run's own readers are."""
    folder = Path(folder)
    curves, summary, doc = load_recorded(folder)
    if doc.get("digest") != cfg.digest():
        raise ConfigError(f"{folder} records run {doc.get('digest')}, but these parameters name run "
                          f"{cfg.digest()}: resume with the parameters it was recorded with (its config.json), "
                          "changing only trials, levels or controls")
    procedure, store, masks = procedure_for(cfg), RunStore(cfg, root), read_masks(folder)
    rows = {_unit(r): r for r in summary.to_dict("records")}
    planned = set(procedure.units())
    complete = {u for u in rows if u in planned and all(f"{u.path}/{kind}" in masks
                                                         for kind in procedure.resume_tensors(u))}
    retrain = {u for u in also_retrain if u in complete}
    frontier = [u for u in planned if u not in complete] + sorted(retrain)
    while frontier:  # a unit trained again reads the weights it starts from too (with its masks known)
        unit = frontier.pop()
        for need in procedure.reads_weights(unit, masks_known=unit in complete):
            if need in complete and need not in retrain:
                retrain.add(need)
                frontier.append(need)
    if not other_machine:
        _same_machine_or_refuse(folder, procedure, rows, complete - retrain, retrain,
                                torch.get_num_threads() if threads is None else threads, readers_elsewhere)
        _expect_recorded_weights(folder, procedure, store, rows, complete, retrain, readers_elsewhere)
    for unit in sorted(retrain):  # trained again from the recorded masks, not from pruning anew
        if not store.done(unit):
            for kind in procedure.resume_tensors(unit):
                store.save_tensor(unit, kind, masks[f"{unit.path}/{kind}"])
    imported = []
    groups = {k: g for k, g in curves.groupby(["trial", "level", "control", "draw"])}
    for unit in sorted(complete - retrain):
        if store.done(unit):
            continue
        # the rows of a unit keep metrics.csv's order through export (iteration, then val before test)
        metrics = groups.get((unit.trial, unit.level, unit.control, unit.draw), curves.iloc[:0])
        unit_rows = list(zip(metrics.iteration.astype(int), metrics.split, metrics.loss.astype(float),
                             metrics.accuracy.astype(float)))
        record = {k: _plain(v) for k, v in rows[unit].items() if k != "experiment"}
        record["resumed_from"] = str(folder)
        record.setdefault("data_md5", None)  # what the recording trained on, not what this process loaded
        tensors = {kind: masks[f"{unit.path}/{kind}"] for kind in procedure.resume_tensors(unit)}
        store.save_unit(unit, unit_rows, record, tensors)
        imported.append(unit)
    if imported:
        store.write_config()
    log(f"{cfg.experiment}: {len(imported)} units resumed from {folder}; {len(retrain)} recorded units to "
        f"train again for the weights or masks the rest starts from, {len(planned - complete)} not recorded")
    return {"imported": imported, "retrain": sorted(retrain)}
