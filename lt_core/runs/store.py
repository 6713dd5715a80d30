"""The run store: one folder per experiment configuration, one sub-folder per trained network ("unit").

    <results root>/<experiment>-<digest>/
        config.json                      the full configuration and the digest that names the folder
        trial_00/rewind.pt               theta_k of the trial (late resetting only)
        trial_00/level_03/ticket/        metrics.csv, mask.pt, final.pt, summary.json
        trial_00/level_03/reinit_1/      (draw 1 of the reinit control) ...

Every file is written atomically (lt_core/data/files.py: temporary file in the same folder, then rename), and
`summary.json` is written last: a unit is done exactly when its summary exists and verifies, so a run killed at
any moment resumes by redoing at most the unit it was in. The results root is `results/` in the repository,
or LT_RESULTS, or an explicit `root` (the command line's --results).

Checked files. The summary records the size and sha256 of every other file of the unit ("files"; "trial_files"
for a trial's tensors written while training it, like rewind.pt), the data it was trained on ("data_md5",
lt_core/data/checksums.py) and its own sha256 ("checksum", over the rest of its JSON). `check(unit)` says whether a
unit is done, missing or damaged (a summary that is empty, cut short, `{}`, edited, or names another unit; a
file missing, truncated or changed; trained on data other than data/checksums.md5 lists now), and every read
(`load_tensor`, `read_metrics`, `summaries`) verifies what it reads or raises DamagedError naming the file.

Older units. A summary without "files" was written before checksums were recorded: such a unit is *legacy* —
done, but only checked for what can be checked without checksums (its summary parses and names it, its
metrics.csv is whole: every row complete, the last at the summary's final iteration; its tensors load). Nothing is rewritten to
add checksums; a unit trained again gets them.

Which network. A unit that stores trained weights ("final") records their `final_weights_sha256`
(provenance.weights_sha256: the tensors' bytes, not the file's, so it names the same network under any torch). Where a
resumed recording's unit is trained again because recorded units started from it (`recorded.resume`), the
recorded sha256 waits in the unit's `expected_weights.json`; `save_unit` compares it, and if training again gave
another network it takes the units trained from it out of the store and stops the run (ConfigError): they
would otherwise go on beside weights they were not trained from.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import ConfigError
from ..config import Experiment
from ..data import checksums, datasets
from ..data.files import StorageError, atomic_write, clean_temporaries, sha256, writing
from ..procedures.base import Unit
from ..provenance import REPO, weights_sha256

__all__ = ["RunStore", "DamagedError", "State", "StorageError", "atomic_write", "results_root"]
SUMMARY = "summary.json"
METRICS = "metrics.csv"
METRICS_HEADER = "iteration,split,loss,accuracy"
UNIT_KEYS = ("trial", "level", "control", "draw")
STORE_KEYS = ("files", "trial_files", "checksum")  # what the store adds to a summary, beside data_md5
EXPECTED = "expected_weights.json"


def results_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("LT_RESULTS") or REPO / "results")


class DamagedError(Exception):
    """A stored file that does not verify. `fix` is what the message tells the user to do."""

    def __init__(self, path: Path, problem: str,
                 fix: str = "running the experiment again (`python -m lt_core run ...`) trains it again"):
        super().__init__(path, problem)
        self.path, self.problem, self.fix = Path(path), problem, fix

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.fix}"


@dataclass(frozen=True)
class State:
    """What the store holds of a unit: "done", "missing" or "damaged" (`error` says which file and why).
    `legacy`: done, but stored before checksums were recorded, so its files could not be verified."""
    state: str
    error: DamagedError | None = None
    legacy: bool = False

    @property
    def problem(self) -> str:
        return f"{self.error.path}: {self.error.problem}" if self.error else ""


def tensor_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _summary_checksum(doc: dict) -> str:
    """sha256 of a summary's JSON without its "checksum" (as save_unit writes it)."""
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    return sha256(json.dumps(rest, indent=1, sort_keys=True).encode())


def _file_record(payload: bytes) -> dict:
    return {"bytes": len(payload), "sha256": sha256(payload)}


def _verified(path: Path, record: dict | None) -> bytes:
    """The bytes of `path`, checked against a summary's `record` of them (size, sha256); unchecked without one."""
    if not path.is_file():
        raise DamagedError(path, "missing" + (" (its unit's summary records it)" if record else ""))
    payload = path.read_bytes()
    if record is None:
        return payload
    if len(payload) != record.get("bytes"):
        raise DamagedError(path, f"{len(payload)} bytes, but its unit's summary records {record.get('bytes')} "
                                 "(truncated or overwritten)")
    if sha256(payload) != record.get("sha256"):
        raise DamagedError(path, "its content does not match the sha256 its unit's summary records")
    return payload


def _torch_load(path: Path, payload: bytes):
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # a legacy file cut short: torch says only "PytorchStreamReader failed ..."
        first = str(error).splitlines()[0] if str(error) else ""
        raise DamagedError(path, f"cannot be read as a tensor file ({type(error).__name__}: {first})") from None


def _unit_of(relative: Path) -> Unit | None:
    """The unit whose folder is `relative` (trial_00/level_03/reinit_1), or None when no unit has it."""
    try:
        trial, level, leaf = relative.parts
        control, _, draw = leaf.rpartition("_")
        unit = (Unit(int(trial[6:]), int(level[6:]), control, int(draw)) if draw.isdigit()
                else Unit(int(trial[6:]), int(level[6:]), leaf))
    except ValueError:
        return None
    return unit if unit.path == relative.as_posix() else None


class RunStore:
    def __init__(self, cfg: Experiment, root: str | Path | None = None):
        self.cfg = cfg
        self.dir = results_root(root) / f"{cfg.experiment}-{cfg.digest()}"
        self._trial_written: dict[int, dict[str, dict]] = {}  # trial tensors written since the last save_unit

    # --- writing ------------------------------------------------------------------------------------------

    def write_config(self) -> None:
        doc = {"digest": self.cfg.digest(), "identity": {k: v for k, v in self.cfg.changed().items()},
               "config": self.cfg.to_dict()}
        atomic_write(self.dir / "config.json", json.dumps(doc, indent=1, sort_keys=True))

    def save_unit(self, unit: Unit, rows, summary: dict, tensors: dict[str, object]) -> None:
        """Tensors and metrics first, summary.json last (the 'done' mark), with the checksums of the others."""
        files = {}
        for name, obj in tensors.items():
            files[f"{name}.pt"] = self._write(self.unit_dir(unit) / f"{name}.pt", tensor_bytes(obj))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(METRICS_HEADER.split(","))
        writer.writerows((i, s, repr(loss), repr(acc)) for i, s, loss, acc in rows)
        files[METRICS] = self._write(self.unit_dir(unit) / METRICS, text.getvalue().encode())
        doc = {k: v for k, v in summary.items() if k not in STORE_KEYS}
        doc.setdefault("data_md5", checksums.trained_on(datasets.base_of(self.cfg.dataset)))  # a resumed unit keeps its recording's
        doc["files"] = files
        if "final" in tensors:
            doc["final_weights_sha256"] = weights_sha256(tensors["final"])
        trial_files = self._trial_written.pop(unit.trial, {})
        if trial_files:
            doc["trial_files"] = trial_files
        doc["checksum"] = _summary_checksum(doc)
        atomic_write(self.unit_dir(unit) / SUMMARY, json.dumps(doc, indent=1, sort_keys=True))
        self._compare_expected(unit, doc.get("final_weights_sha256"))

    def expect_weights(self, unit: Unit, sha256: str, readers: list[Unit], recording: str,
                       elsewhere: list[str] = ()) -> None:
        """Before `unit` trains again: the weights the recording's `readers` (stored units trained from it)
        and `elsewhere` (folders of another experiment's stored units trained from it: a transfer's) were
        trained from. `save_unit` compares them with what the training gives."""
        doc = {"final_weights_sha256": sha256, "readers": [u.path for u in readers], "recording": recording,
               "elsewhere": list(elsewhere)}
        atomic_write(self.unit_dir(unit) / EXPECTED, json.dumps(doc, indent=1, sort_keys=True))

    def compare_expected(self) -> None:
        """Compare every expectation left beside a unit already done: a run killed between a unit's summary
        and its comparison (in save_unit) must not go on from another network at the next run."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob(f"trial_*/level_*/*/{EXPECTED}")):
            unit = _unit_of(path.parent.relative_to(self.dir))
            if unit is not None and self.done(unit):
                self._compare_expected(unit, self.summary(unit).get("final_weights_sha256"))

    def _compare_expected(self, unit: Unit, sha256: str | None) -> None:
        path = self.unit_dir(unit) / EXPECTED
        if not path.exists():
            return
        expected = json.loads(path.read_text())
        if sha256 == expected["final_weights_sha256"]:
            path.unlink()  # the same network as the recording's: the resumed run goes on as one
            return
        readers = [_unit_of(Path(p)) for p in expected["readers"]]
        for reader in readers:  # they stay in the recording; a run trains them again from this network
            self.discard(reader)
        elsewhere = [Path(p) for p in expected.get("elsewhere", [])]
        for folder in elsewhere:  # another experiment's units (a transfer's), as its store's discard does
            if folder.exists():
                with writing(folder):
                    shutil.rmtree(folder)
        readers += elsewhere
        path.unlink()
        raise ConfigError(
            f"{unit.path} trained again is another network than the one {expected['recording']} records "
            f"(weights sha256 {str(sha256)[:12]} against {expected['final_weights_sha256'][:12]}), so the "
            f"{len(readers)} recorded units trained from it are taken out of "
            f"{'the run stores (' + str(len(elsewhere)) + ' of another experiment)' if elsewhere else 'this run store'}"
            ": run again without "
            "--resume-from to train them from this network, or with it and --other-machine to keep the recorded "
            "ones beside it")

    def save_tensor(self, unit: Unit, name: str, obj) -> None:
        """A tensor of a unit before its summary (a resumed recording's mask); save_unit records them all."""
        self._write(self.unit_dir(unit) / f"{name}.pt", tensor_bytes(obj))

    def save_trial_tensor(self, trial: int, name: str, obj) -> None:
        """A tensor the trial's units share (theta_k); its checksum goes into the next unit stored of the
        trial (the one whose training wrote it), so that unit counts as damaged when it does not verify."""
        record = self._write(self.dir / f"trial_{trial:02d}" / f"{name}.pt", tensor_bytes(obj))
        self._trial_written.setdefault(trial, {})[f"{name}.pt"] = record

    @staticmethod
    def _write(path: Path, payload: bytes) -> dict:
        atomic_write(path, payload)
        return _file_record(payload)

    def discard(self, unit: Unit) -> None:
        """Remove a unit's folder (a damaged unit, or one trained from it, before it is trained again)."""
        folder = self.unit_dir(unit)
        if folder.exists():
            with writing(folder):
                shutil.rmtree(folder)

    def clean_temporaries(self) -> list[Path]:
        """Remove the temporary files that killed writes left in this store (not those of live writers)."""
        return clean_temporaries(self.dir) if self.dir.is_dir() else []

    # --- reading and checking -------------------------------------------------------------------------

    def unit_dir(self, unit: Unit) -> Path:
        return self.dir / unit.path

    def metrics_path(self, unit: Unit) -> Path:
        return self.unit_dir(unit) / METRICS

    def has(self, unit: Unit, name: str) -> bool:
        """Whether the unit's tensor `name` is stored (a unit being trained, or one that `recorded.resume`
        gave its recorded mask to train again, has its mask before its summary)."""
        return (self.unit_dir(unit) / f"{name}.pt").exists()

    def done(self, unit: Unit) -> bool:
        return self.check(unit).state == "done"

    def check(self, unit: Unit) -> State:
        """Whether the unit is done, missing or damaged; reads and hashes every file of a done unit."""
        if not (self.unit_dir(unit) / SUMMARY).exists():
            return State("missing")
        try:
            summary = self.summary(unit)
            for name, record in summary.get("files", {}).items():
                _verified(self.unit_dir(unit) / name, record)
            for name, record in summary.get("trial_files", {}).items():
                _verified(self.trial_dir(unit.trial) / name, record)
            if "files" not in summary:  # a legacy unit: is its metrics.csv whole, does each tensor load?
                self.read_metrics(unit, summary)
                for path in sorted(self.unit_dir(unit).glob("*.pt")):
                    _torch_load(path, path.read_bytes())
        except DamagedError as error:
            return State("damaged", error)
        stale = self._other_data(summary)
        if stale:
            return State("damaged", DamagedError(self.unit_dir(unit) / SUMMARY, stale))
        return State("done", legacy="files" not in summary)

    def _other_data(self, summary: dict) -> str | None:
        """Why a unit was trained on other data than data/checksums.md5 lists now (None if it was not, or
        if the unit does not say: units stored before data were recorded, or trained on tensors in memory)."""
        recorded = summary.get("data_md5")
        if not recorded:
            return None
        try:
            now = datasets.listed_digest(self.cfg.dataset)
        except datasets.DataError:
            return None
        if now is None or now == recorded:
            return None
        return (f"trained on {self.cfg.dataset} files whose checksums (md5 {recorded} of their lines) are not "
                f"those data/checksums.md5 lists now ({now})")

    def summary(self, unit: Unit) -> dict:
        """The unit's summary, checked: whole JSON, its own checksum, naming this unit."""
        path = self.unit_dir(unit) / SUMMARY
        text = path.read_bytes()
        if not text.strip():
            raise DamagedError(path, "empty (a write cut short)")
        try:
            doc = json.loads(text)
        except ValueError as error:
            raise DamagedError(path, f"not valid JSON ({error})") from None
        if not isinstance(doc, dict) or any(k not in doc for k in UNIT_KEYS):
            raise DamagedError(path, f"not a unit's summary (it lacks {', '.join(UNIT_KEYS)})")
        if "checksum" in doc and doc["checksum"] != _summary_checksum(doc):
            raise DamagedError(path, "does not match its own checksum (edited or damaged)")
        try:
            named = Unit(int(doc["trial"]), int(doc["level"]), str(doc["control"]), int(doc["draw"]))
        except (TypeError, ValueError):
            named = None
        if named != unit.own():
            raise DamagedError(path, f"names trial {doc['trial']} level {doc['level']} {doc['control']} draw "
                                     f"{doc['draw']}, not the unit of its folder")
        return doc

    def trial_dir(self, trial: int) -> Path:
        return self.dir / f"trial_{trial:02d}"

    def _record(self, unit: Unit, name: str) -> dict | None:
        """What a done unit's summary records of its file `name`; None for a unit without a summary yet (being
        trained, or resumed from a recording) or a legacy one."""
        if not (self.unit_dir(unit) / SUMMARY).exists():
            return None
        return self.summary(unit).get("files", {}).get(name)

    def load_tensor(self, unit: Unit, name: str):
        path = self.unit_dir(unit) / f"{name}.pt"
        return _torch_load(path, _verified(path, self._record(unit, f"{name}.pt")))

    def load_trial_tensor(self, trial: int, name: str):
        """A trial's tensor, verified against the summary of the unit whose training wrote it (if one did)."""
        path, record = self.trial_dir(trial) / f"{name}.pt", None
        for summary_path in sorted(self.trial_dir(trial).glob(f"level_*/*/{SUMMARY}")):
            try:
                doc = json.loads(summary_path.read_text())
            except ValueError:
                continue  # a damaged summary is check()'s to report; it cannot vouch for the file
            if isinstance(doc, dict) and path.name in (doc.get("trial_files") or {}):
                record = doc["trial_files"][path.name]
                break
        return _torch_load(path, _verified(path, record))

    def read_metrics(self, unit: Unit, summary: dict | None = None) -> str:
        """metrics.csv of a done unit, verified (a legacy unit's: every row whole, the last at its
        summary's final iteration)."""
        summary = self.summary(unit) if summary is None else summary
        path = self.metrics_path(unit)
        text = _verified(path, summary.get("files", {}).get(METRICS)).decode()
        if "files" not in summary:
            lines = text.split("\n")
            if not text.endswith("\n") or lines[0] != METRICS_HEADER or any(l.count(",") != 3 for l in lines[1:-1]):
                raise DamagedError(path, "cut short or malformed (a legacy unit without checksums)")
            last = summary.get("final_iteration")
            if last is not None and len(lines) > 2 and lines[-2].split(",")[0] != str(last):
                raise DamagedError(path, f"ends at iteration {lines[-2].split(',')[0]}, but its summary's final "
                                         f"iteration is {last} (cut short; a legacy unit without checksums)")
        return text

    def units(self) -> list[tuple[Unit, dict]]:
        """(unit, summary) of every unit stored with a summary, each checked like check(); DamagedError on the
        first that does not verify, so no table is ever built from a part of the store."""
        out = []
        for path in sorted(self.dir.glob(f"trial_*/level_*/*/{SUMMARY}")):
            unit = _unit_of(path.parent.relative_to(self.dir))
            if unit is None:
                raise DamagedError(path.parent, "a folder of the store that names no unit")
            state = self.check(unit)
            if state.error:
                raise state.error
            out.append((unit, self.summary(unit)))
        return out

    def summaries(self) -> list[dict]:
        """The summaries of every stored unit, checked (see units()), without the store's own records."""
        return [{k: v for k, v in s.items() if k not in STORE_KEYS} for _, s in self.units()]
