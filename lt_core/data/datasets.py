"""Datasets in memory: MNIST, Fashion-MNIST and CIFAR-10 as uint8 tensors.

`load(name)` reads the official files (fetched by `python -m lt_core data fetch
NAME`, see lt_core/data/fetch.py and data/README.md) and returns a `Splits`:
train / validation / test tensors plus per-channel mean and std. Before it
reads them it checks their sizes and their md5 against data/checksums.md5
(lt_core/data/checksums.py, cached by size and mtime), and after, that every label
is a class index: nothing trains on a file that is not the official one, and
each error names the file and the command that replaces it.

The split follows Frankle & Carbin (2019), who hold out 5,000 examples of the
official training set for validation (early-stopping iteration, tuning) and
report test accuracy on the official test set. A torch.Generator seeded with
`split_seed` draws a permutation of the official training indices; its first
`val_size` entries are the validation set and the rest the training set, each
kept in original file order (sorted indices). mean/std are computed over the
training split only, so nothing about validation or test leaks into inputs.

Readers are vectorised (numpy frombuffer + reshape); no per-sample Python.
"""
from __future__ import annotations

import functools
import os
import pathlib
from dataclasses import dataclass

import numpy as np
import torch

from ..provenance import REPO
from . import checksums
from .checksums import DataError, fix_command

__all__ = ["DataError", "fix_command", "load", "spec", "Splits"]
NAMES = ("mnist", "fashion_mnist", "cifar10")
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then R, G, B planes of 1024 bytes


@dataclass(frozen=True)
class Spec:
    """Where a dataset's files live and what they must contain."""
    kind: str                  # "idx" (MNIST-style) or "cifar" (CIFAR binary)
    dirs: tuple[str, ...]      # candidate folders under the root; first = our own layout
    train: tuple[str, ...]     # idx: (images, labels); cifar: batch files
    test: tuple[str, ...]
    n_train: int
    n_test: int

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test

    def size_of(self, fname: str) -> int:
        """Exact byte size a file must have (cheap sanity check for load)."""
        if self.kind == "cifar":  # the training records are split evenly over the batches
            n = self.n_train // len(self.train) if fname in self.train else self.n_test
            return n * CIFAR_RECORD
        n = self.n_train if fname in self.train else self.n_test
        return 16 + n * 28 * 28 if "images" in fname else 8 + n


_IDX = dict(kind="idx",
            train=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            test=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
            n_train=60000, n_test=10000)
# Second entries are torchvision's layouts, so an existing download is reused.
DATASETS: dict[str, Spec] = {
    "mnist": Spec(dirs=("mnist", "MNIST/raw"), **_IDX),
    "fashion_mnist": Spec(dirs=("fashion_mnist", "FashionMNIST/raw"), **_IDX),
    "cifar10": Spec(kind="cifar", dirs=("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin"),
                    train=tuple(f"data_batch_{k}.bin" for k in range(1, 6)),
                    test=("test_batch.bin",), n_train=50000, n_test=10000),
}


# Data sets made from another's files (Morcos et al.'s splits of CIFAR-10 for ticket transfer, issue 17):
# name -> (base, rule, argument). "classes": the examples of those classes only, relabelled 0..n-1 (a network
# for it has n outputs); "half": half of each class's training examples (a seeded split of the base's
# training split; validation and test stay whole: the same distribution, other examples).
SUBSETS = {
    "cifar10_classes_0_4": ("cifar10", "classes", (0, 1, 2, 3, 4)),
    "cifar10_classes_5_9": ("cifar10", "classes", (5, 6, 7, 8, 9)),
    "cifar10_half_a": ("cifar10", "half", 0),
    "cifar10_half_b": ("cifar10", "half", 1),
}


def base_of(name: str) -> str:
    """The data set whose files `name` is read from (itself, unless it is one of SUBSETS)."""
    return SUBSETS[name][0] if name in SUBSETS else name


def num_classes(name: str) -> int:
    return len(SUBSETS[name][2]) if name in SUBSETS and SUBSETS[name][1] == "classes" else 10


def spec(name: str) -> Spec:
    name = base_of(name)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose from {', '.join(NAMES)} "
                        f"(e.g. `{fix_command('mnist')}`)")
    return DATASETS[name]


def expected_md5(name: str, fname: str) -> str:
    """The md5 data/checksums.md5 lists for a file of `name` (keyed by our own layout; a torchvision
    layout's files share the basenames)."""
    rel = f"{spec(name).dirs[0]}/{fname}"
    try:
        return checksums.listed()[rel]
    except KeyError:
        raise DataError(f"{checksums.CHECKSUMS_FILE} has no entry for {rel}; restore it with "
                        f"`git checkout data/checksums.md5`") from None


def listed_digest(name: str) -> str | None:
    """What a unit trained on `name` now records as its data (checksums.listed_digest of its folder)."""
    return checksums.listed_digest(spec(name).dirs[0])


def data_root(root: pathlib.Path | str | None = None) -> pathlib.Path:
    """Explicit root, else $LT_DATA, else <repo>/data."""
    if root is None:
        root = os.environ.get("LT_DATA") or REPO / "data"
    return pathlib.Path(root).expanduser().resolve()


def find_dir(name: str, root: pathlib.Path | str | None = None) -> pathlib.Path | None:
    """First recognised folder under the root that holds all of the dataset's files."""
    base = data_root(root)
    for d in spec(name).dirs:
        if all((base / d / f).is_file() for f in spec(name).files):
            return base / d
    return None


def absent(name: str, root: pathlib.Path | str | None = None) -> str:
    """Why `find_dir` finds no folder: the first missing file of the folder that holds some of them, or
    that none of the recognised folders holds any, with the command that fetches the data set."""
    base, s = data_root(root), spec(name)
    for d in s.dirs:
        missing = [f for f in s.files if not (base / d / f).is_file()]
        if len(missing) < len(s.files):
            more = f" (and {len(missing) - 1} more of its files)" if len(missing) > 1 else ""
            return f"{base / d / missing[0]} is missing{more}. Fetch it with `{fix_command(name)}`."
    return (f"dataset {name} not found under {base} (looked in {', '.join(s.dirs)}). "
            f"Fetch it with `{fix_command(name)}`.")


def _hint(path: pathlib.Path) -> str:
    """The fetch command for the dataset a file belongs to (for reader errors)."""
    p = str(path).lower()
    name = "cifar10" if "cifar" in p else "fashion_mnist" if "fashion" in p else "mnist"
    return f"Replace it with `{fix_command(name)}`."


def read_idx(path: pathlib.Path | str) -> torch.Tensor:
    """An IDX file (the MNIST format) as a uint8 tensor of the dims in its header."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    # Header: two zero bytes, type code 0x08 (unsigned byte), number of dims, then
    # one big-endian uint32 per dim. Anything else is not a file we can read.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 4:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()}). "
                        + _hint(path))
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: truncated IDX header. " + _hint(path))
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    want = head + int(np.prod(dims))
    if len(raw) != want:
        what = "truncated" if len(raw) < want else "longer than its header says"
        raise DataError(f"{path}: {what}: header {dims} needs {want} bytes, file has "
                        f"{len(raw)}. " + _hint(path))
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=head).reshape(dims).copy())


def read_cifar_bin(path: pathlib.Path | str) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-10 binary batch: images uint8 (n, 3, 32, 32) and labels int64 (n,)."""
    path = pathlib.Path(path)
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of "
                        f"{CIFAR_RECORD}-byte CIFAR records (truncated?). " + _hint(path))
    rec = raw.reshape(-1, CIFAR_RECORD)
    x = rec[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(x.copy()), torch.from_numpy(rec[:, 0].astype(np.int64))


def read_png_sprite(path: pathlib.Path | str) -> torch.Tensor:
    """A sprite PNG (one 32x32 RGB image per 1024-pixel row, pixels row-major,
    RGB interleaved) as uint8 (n, 3, 32, 32) planes, CIFAR's channel-first order."""
    from PIL import Image  # only fetch needs Pillow; keep `import lt_core.data` light
    path = pathlib.Path(path)
    with Image.open(path) as im:
        if im.mode != "RGB" or im.width != 1024:
            raise DataError(f"{path}: expected an RGB PNG 1024 pixels wide, got "
                            f"{im.mode} {im.width}x{im.height}. " + _hint(path))
        arr = np.asarray(im)  # (rows, 1024, 3)
    return torch.from_numpy(arr.reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2).copy())


@dataclass(frozen=True)
class Splits:
    """One dataset in memory. Shared by the load() cache: don't modify in place."""
    name: str
    x_train: torch.Tensor  # uint8 (N, C, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor     # float32 (C,): mean of x/255 over x_train only
    std: torch.Tensor      # float32 (C,): population std of x/255 over x_train
    num_classes: int = 10


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx), both sorted: val = first val_size of a seeded permutation."""
    if not 0 <= val_size < n:
        raise DataError(f"val_size={val_size} must be in [0, {n}) for a training set of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean/std of x/255 for uint8 x (N, C, H, W).

    A 256-bin histogram per channel gives the sums exactly in float64 without
    materialising a float copy of the images (CIFAR's would be ~0.5 GB)."""
    v = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        h = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        m = (h * v).sum() / h.sum()
        means.append(m)
        stds.append(((h * v * v).sum() / h.sum() - m * m).clamp_min(0).sqrt())
    return torch.stack(means).float(), torch.stack(stds).float()


def _read(name: str, folder: pathlib.Path, files: tuple[str, ...]):
    if spec(name).kind == "idx":
        x, y = read_idx(folder / files[0]), read_idx(folder / files[1])
        return x.unsqueeze(1), y.long()
    parts = [read_cifar_bin(folder / f) for f in files]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def check_labels(labels: torch.Tensor, name: str, folder: pathlib.Path, files: tuple[str, ...],
                 num_classes: int = 10) -> None:
    """Every label a class index (a label out of range would stop training mid-way, in the loss)."""
    bad = ((labels < 0) | (labels >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        where = folder / files[1] if spec(name).kind == "idx" else folder / files[i // (len(labels) // len(files))]
        raise DataError(f"{where}: label {int(labels[i])} of example {i} is not a class in 0-{num_classes - 1} "
                        f"({len(bad)} such labels). Replace it with `{fix_command(name)}`.")


def load(name: str, root: pathlib.Path | None = None, *, val_size: int = 5000, split_seed: int = 0,
         train_fraction: float = 1.0) -> Splits:
    """Train/val/test splits of `name` (see module docstring and SUBSETS), cached in-process. train_fraction
    < 1 keeps that share of the training split (each class's, rounded; drawn with split_seed), validation and
    test whole: a smaller data set of the same distribution (Morcos et al.'s "larger datasets transfer better")."""
    if not 0 < train_fraction <= 1:
        raise DataError(f"train_fraction={train_fraction} must be in (0, 1]")
    splits = _load(base_of(name), data_root(root), val_size, split_seed)
    if name in SUBSETS:
        splits = _subset(splits, name, split_seed)
    return _fraction(splits, train_fraction, split_seed) if train_fraction < 1 else splits


def _per_class_share(y: torch.Tensor, part: int, parts: int, share: float, seed: int) -> torch.Tensor:
    """Sorted indices of `y`: per class, a seeded permutation's part `part` of `parts` equal parts, or its
    first round(share x n) entries when parts is 0."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        keep.append(idx[:round(share * len(idx))] if not parts
                    else idx[part * len(idx) // parts:(part + 1) * len(idx) // parts])
    return torch.cat(keep).sort().values


def _with_stats(splits: Splits, name: str, **parts) -> Splits:
    fields = {f: getattr(splits, f) for f in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    fields.update(parts)
    mean, std = channel_stats(fields["x_train"])
    return Splits(name, **fields, mean=mean, std=std, num_classes=num_classes(name))


def _subset(splits: Splits, name: str, seed: int) -> Splits:
    _, rule, arg = SUBSETS[name]
    if rule == "half":
        keep = _per_class_share(splits.y_train, arg, 2, 1.0, seed)
        return _with_stats(splits, name, x_train=splits.x_train[keep], y_train=splits.y_train[keep])
    classes = torch.tensor(arg)
    relabel = torch.full((int(classes.max()) + 1,), -1, dtype=torch.long)
    relabel[classes] = torch.arange(len(classes))
    out = {}
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        keep = torch.isin(y, classes)
        out[f"x_{split}"], out[f"y_{split}"] = x[keep], relabel[y[keep]]
    return _with_stats(splits, name, **out)


def _fraction(splits: Splits, share: float, seed: int) -> Splits:
    keep = _per_class_share(splits.y_train, 0, 0, share, seed + 1)
    return _with_stats(splits, splits.name, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


@functools.lru_cache(maxsize=8)
def _load(name: str, root: pathlib.Path, val_size: int, split_seed: int) -> Splits:
    s = spec(name)
    folder = find_dir(name, root)
    if folder is None:
        raise DataError(absent(name, root))
    for f in s.files:  # sizes first: a truncated file is said as such, without reading it
        got, want = (folder / f).stat().st_size, s.size_of(f)
        if got != want:
            raise DataError(f"{folder / f}: {got} bytes, expected {want} (truncated or wrong "
                            f"file). Replace it with `{fix_command(name)}`.")
    checksums.verify_files(name, {folder / f: expected_md5(name, f) for f in s.files}, root, listed_digest(name))
    x, y = _read(name, folder, s.train)
    x_test, y_test = _read(name, folder, s.test)
    for labels, files in ((y, s.train), (y_test, s.test)):
        check_labels(labels, name, folder, files)
    tr, va = split_indices(len(y), val_size, split_seed)
    mean, std = channel_stats(x[tr])
    return Splits(name, x[tr], y[tr], x[va], y[va], x_test, y_test, mean, std)


load.cache_clear = _load.cache_clear  # type: ignore[attr-defined]
