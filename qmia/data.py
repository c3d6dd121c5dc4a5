"""Datasets as uint8 tensors: decoded once, cached with their provenance and checksum (splits: :mod:`qmia.splits`).

A dataset is decoded once into ``<cache>/data/<name>-v<DATA_VERSION>.pt`` (images uint8 N x C x H x W,
labels int64 N; the official train and test sets pooled, train first). Sources:

* ``fashion_mnist``: torchvision's FashionMNIST under the data root (gzipped idx files are
  unpacked into the cache when the root is read-only, e.g. ``../shared/data``).
* ``cifar10``: torchvision's CIFAR10 (python batches) under the data root, or an image-folder
  copy ``<root>/cifar10/{train,test}/<class>/*``, or its tarball ``<root>/cifar10*.tar.gz``
  holding ``train/`` and ``test/`` folders (read without unpacking).
* ``digits``: scikit-learn's embedded 8x8 digits (1,797 images), resized to 16x16; offline.

With the tensors, the same file records where they came from and a checksum of the exact pixels (checked when
read); :func:`data_source` gives both as one line for results rows.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .settings import cache_root, data_root
from .store import DamagedEntry, atomic_save, move_aside, read_json

DATASETS = ("digits", "fashion_mnist", "cifar10")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATA_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str  # 'crop+rotate' or 'crop+flip'
    pad: int


INFO = {
    "digits": DatasetInfo(1, 16, 10, (0.31,), (0.37,), "crop+rotate", 2),
    "fashion_mnist": DatasetInfo(1, 28, 10, (0.286,), (0.353,), "crop+rotate", 2),
    "cifar10": DatasetInfo(3, 32, 10, (0.491, 0.482, 0.447), (0.247, 0.243, 0.262), "crop+flip", 4),
}


class DatasetUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable."""


def dataset_info(name: str) -> DatasetInfo:
    if name not in INFO:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return INFO[name]


# ----------------------------------------------------------------------------- loading


def _missing(name: str, root: Path, looked: list[str], err: Exception | None) -> DatasetUnavailable:
    where = "\n  ".join(looked)
    return DatasetUnavailable(
        f"dataset {name!r} is not on disk and could not be downloaded ({type(err).__name__ if err else 'offline'}).\n"
        f"Looked in:\n  {where}\n"
        f"Point qmia at a copy with --data-root DIR (notebooks: data_root) or QMIA_DATA=DIR, or run offline with "
        f"PROFILE=smoke (scikit-learn's digits); the paper book needs no data set (make book builds it from "
        f"results/paper/)."
    )


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # heavy: imported only when this data set is read

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # N x 1 x 8 x 8 in [0, 1]
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), torch.tensor(d.target, dtype=torch.int64)


def _fashion_dir(root: Path, scratch: Path) -> Path:
    """A folder holding FashionMNIST/raw/ with unzipped idx files (unpacking .gz into scratch)."""
    raw = root / "FashionMNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if all((raw / n).exists() for n in names):
        return root
    if all((raw / f"{n}.gz").exists() for n in names):
        out = scratch / "FashionMNIST" / "raw"
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            if not (out / n).exists():
                try:
                    with gzip.open(raw / f"{n}.gz", "rb") as src, open(out / f"{n}.part", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except (OSError, EOFError) as e:  # truncated or not gzip at all
                    (out / f"{n}.part").unlink(missing_ok=True)
                    raise DatasetUnavailable(
                        f"{raw / f'{n}.gz'} is damaged ({type(e).__name__}: {e}); replace it with "
                        "an intact copy of Fashion-MNIST's idx files"
                    ) from e
                os.replace(out / f"{n}.part", out / n)
        return scratch
    return root


def _load_fashion(root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import FashionMNIST  # heavy: imported only when this data set is read

    base = _fashion_dir(root, cache_root() / "data" / "raw")
    raw = base / "FashionMNIST" / "raw"
    parts = []
    try:
        for train in (True, False):
            ds = FashionMNIST(str(base), train=train, download=False)
            parts.append((ds.data[:, None].clone(), ds.targets.clone()))
    except RuntimeError as e:
        if raw.is_dir() and any(raw.iterdir()) and "not found" not in str(e).lower():
            raise DatasetUnavailable(
                f"the Fashion-MNIST idx files in {raw} cannot be read ({e}); replace them with an "
                "intact copy (60,000 training and 10,000 test images of 28x28)"
            ) from e
        if not download:
            raise _missing("fashion_mnist", root, [str(root / "FashionMNIST/raw")], e) from e
        try:
            parts = []
            for train in (True, False):
                ds = FashionMNIST(str(root), train=train, download=True)
                parts.append((ds.data[:, None].clone(), ds.targets.clone()))
        except Exception as e2:  # offline: URLError, OSError, ...
            raise _missing("fashion_mnist", root, [str(root / "FashionMNIST/raw")], e2) from e2
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _decode_images(items: list[tuple[str, bytes, int]]) -> tuple[torch.Tensor, torch.Tensor, set[str]]:
    """(name, encoded bytes, label) -> uint8 N x 3 x H x W, int64 labels, and the file formats seen."""
    from PIL import Image  # heavy: imported only when this data set is read

    xs, formats = [], set()
    for name, b, _ in items:
        try:
            with Image.open(io.BytesIO(b)) as im:
                formats.add(str(im.format))
                xs.append(np.asarray(im.convert("RGB")))
        except Exception as e:  # PIL raises many kinds for a damaged file
            raise DatasetUnavailable(f"image {name} cannot be decoded ({type(e).__name__}: {e}); replace it") from e
        if xs[-1].shape != (32, 32, 3):
            raise DatasetUnavailable(
                f"image {name} is {xs[-1].shape[1]}x{xs[-1].shape[0]}; CIFAR-10 images are 32x32 RGB"
            )
    return (
        torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(),
        torch.tensor([y for *_, y in items]),
        formats,
    )


def _cifar_from_tar(path: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    by_split: dict[str, list[tuple[str, bytes, int]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                parts = Path(m.name).parts
                if not m.isfile() or len(parts) < 3 or parts[-3] not in by_split or parts[-2] not in CIFAR10_CLASSES:
                    continue
                by_split[parts[-3]].append((m.name, tar.extractfile(m).read(), CIFAR10_CLASSES.index(parts[-2])))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetUnavailable(f"{path} is damaged ({type(e).__name__}: {e}); replace it with an intact copy") from e
    x, y, formats = _pool_image_splits(by_split)
    return x, y, f"image-folder tarball {path.name} ({_copy_kind(formats)})"


def _cifar_from_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    by_split: dict[str, list[tuple[str, bytes, int]]] = {}
    for split in ("train", "test"):
        by_split[split] = [
            (str(f), f.read_bytes(), CIFAR10_CLASSES.index(c))
            for c in CIFAR10_CLASSES
            for f in sorted((folder / split / c).iterdir())
            if f.is_file()
        ]
    x, y, formats = _pool_image_splits(by_split)
    return x, y, f"image folder {folder.name}/ ({_copy_kind(formats)})"


def _copy_kind(formats: set[str]) -> str:
    """'JPEG copy', 'PNG copy', ...: the image formats PIL found in a folder or tarball."""
    return f"{'+'.join(sorted(formats))} copy"


def _pool_image_splits(
    by_split: dict[str, list[tuple[str, bytes, int]]],
) -> tuple[torch.Tensor, torch.Tensor, set[str]]:
    xs, ys, formats = [], [], set()
    for split in ("train", "test"):
        items = sorted(by_split[split], key=lambda t: t[0])
        if not items:
            raise DatasetUnavailable(f"CIFAR-10 image folder has no {split}/ images")
        x, y, f = _decode_images(items)
        xs.append(x), ys.append(y), formats.update(f)
    return torch.cat(xs), torch.cat(ys), formats


def _load_cifar(root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images, labels and a short description of the copy they came from."""
    from torchvision.datasets import CIFAR10  # heavy: imported only when this data set is read

    looked = [
        str(root / "cifar-10-batches-py"),
        str(root / "cifar10/{train,test}/<class>/"),
        str(root / "cifar10*.tar.gz"),
    ]
    if (root / "cifar-10-batches-py").exists() or download:
        try:
            parts = [
                CIFAR10(str(root), train=t, download=download and not (root / "cifar-10-batches-py").exists())
                for t in (True, False)
            ]
            x = torch.cat([torch.from_numpy(p.data).permute(0, 3, 1, 2) for p in parts])
            return (
                x.contiguous(),
                torch.cat([torch.tensor(p.targets) for p in parts]),
                "torchvision python batches (original)",
            )
        except Exception as e:
            err = e
    else:
        err = None
    if (root / "cifar10" / "train").is_dir():
        return _cifar_from_folder(root / "cifar10")
    tars = sorted(root.glob("cifar10*.tar.gz")) + sorted(root.glob("cifar10*.tar"))
    if tars:
        return _cifar_from_tar(tars[0])
    raise _missing("cifar10", root, looked, err)


def check_tensors(name: str, x: torch.Tensor, y: torch.Tensor, where: str) -> None:
    """Raise :class:`DatasetUnavailable` naming ``where`` unless x is uint8 N x C x H x W of the data set's shape
    and y holds N labels among its classes."""
    info = dataset_info(name)
    want = (info.channels, info.image_size, info.image_size)
    problem = None
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        problem = "it does not hold image and label tensors"
    elif x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != want:
        problem = f"its images are {x.dtype} {tuple(x.shape)}, expected uint8 N x {want[0]} x {want[1]} x {want[2]}"
    elif y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        problem = f"it has {len(x)} images and {tuple(y.shape)} labels"
    elif int(y.min()) < 0 or int(y.max()) >= info.num_classes:
        problem = f"its labels run from {int(y.min())} to {int(y.max())}, expected 0..{info.num_classes - 1}"
    if problem:
        raise DatasetUnavailable(f"{name} from {where}: {problem}")


def _cache_paths(name: str) -> tuple[Path, Path]:
    """The cached tensors ``<cache>/data/<name>-v{DATA_VERSION}.pt`` and the provenance sidecar (.json) that caches
    written before the tensor file held its own provenance have beside them."""
    cached = cache_root() / "data" / f"{name}-v{DATA_VERSION}.pt"
    return cached, cached.with_suffix(".json")


def data_checksum(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 (hex) of the uint8 image bytes (N x C x H x W, C order) followed by the int64 label bytes."""
    h = hashlib.sha256(x.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()


def _file_stamp(path: Path) -> list[int]:
    """[size in bytes, mtime in ns, inode] of a file: any rewrite of the cached tensors changes it."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


_VERIFIED: dict[str, list[int]] = {}  # tensor file -> its stamp when its pixels last matched their recorded sha256
_SOURCES: dict[str, tuple[list[int], str]] = {}  # tensor file -> (its stamp, its data_source line)


def _legacy_source(name: str, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """The source a cache written before tensor files held their provenance recorded in its sidecar, when the
    sidecar's checksum is that of these pixels; else None."""
    sidecar = _cache_paths(name)[1]
    try:
        record = read_json(sidecar) if sidecar.exists() else None
    except DamagedEntry:
        return None
    if (
        isinstance(record, dict)
        and isinstance(record.get("source"), str)
        and record.get("sha256") == data_checksum(x, y)
    ):
        return record["source"]
    return None


def _read_cached(name: str) -> dict | None:
    """The cached {x, y, source, sha256} of ``name``, checked (shape, and the pixels against their sha256 once per
    process while the file is unchanged); None when nothing is cached or the file is damaged (reported and moved
    aside: the data set is decoded again). An older cache whose provenance was in a sidecar is upgraded when the
    sidecar's checksum matches its pixels, else decoded again."""
    cached, sidecar = _cache_paths(name)
    if not cached.exists():
        return None
    try:
        blob = torch.load(cached, weights_only=True)
        if not isinstance(blob, dict) or not {"x", "y"} <= set(blob):
            raise ValueError("not a cached data set")
        check_tensors(name, blob["x"], blob["y"], str(cached))
        if "sha256" not in blob or "source" not in blob:  # written before the file held its provenance
            source = _legacy_source(name, blob["x"], blob["y"])
            if source is None:
                raise ValueError("its source was never recorded (a cache from before provenance was kept with it)")
            blob = _write_cache(name, blob["x"], blob["y"], source)
            sidecar.unlink(missing_ok=True)
        elif _VERIFIED.get(str(cached)) != _file_stamp(cached):
            if data_checksum(blob["x"], blob["y"]) != blob["sha256"]:
                raise ValueError("its pixels do not match their recorded sha256")
            _VERIFIED[str(cached)] = _file_stamp(cached)
        return blob
    except Exception as e:  # truncated, not a checkpoint, the wrong shape or changed: decode again
        move_aside(cached, f"{type(e).__name__}: {e}"[:200])
        return None


def _write_cache(name: str, x: torch.Tensor, y: torch.Tensor, source: str) -> dict:
    """Cache the tensors of ``name`` with their source and checksum, in one atomic write (so a kill never leaves
    pixels without their provenance)."""
    cached, _ = _cache_paths(name)
    blob = {"x": x, "y": y, "source": source, "sha256": data_checksum(x, y)}
    atomic_save(blob, cached)
    _VERIFIED[str(cached)] = _file_stamp(cached)
    return blob


def _load(name: str, root: str | os.PathLike | None, download: bool) -> dict:
    dataset_info(name)
    blob = _read_cached(name)
    if blob is not None:
        return blob
    if name == "digits":
        x, y = _load_digits()
        source = "scikit-learn load_digits, resized to 16x16"
    elif name == "fashion_mnist":
        x, y = _load_fashion(data_root(root), download)
        source = "idx files (original)"
    else:
        x, y, source = _load_cifar(data_root(root), download)
    check_tensors(name, x, y, source)
    return _write_cache(name, x, y, source)


def load_dataset(
    name: str, root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a dataset pooled (train then test): uint8 N x C x H x W and int64 N labels.

    Decoded once and cached in ``<cache>/data/<name>-v{DATA_VERSION}.pt`` with their source and checksum (see
    :func:`data_source`); later calls read the cache, checked against that checksum.
    """
    blob = _load(name, root, download)
    return blob["x"], blob["y"]


def data_source(name: str, root: str | os.PathLike | None = None) -> str:
    """One line saying where the tensors of ``name`` came from and which pixels they are, e.g.
    ``"cifar10: image-folder tarball cifar10-jpeg-q75.tar.gz (JPEG copy); images sha256 3f2a9c1b0d4e"``
    (the first 12 hex digits of :func:`data_checksum`), from the cached tensor file, which records both. If
    nothing is cached, the data set is decoded from local files (never downloaded; else
    :class:`DatasetUnavailable`).
    """
    cached, _ = _cache_paths(name)
    known = _SOURCES.get(str(cached))
    if known is not None and cached.exists() and known[0] == _file_stamp(cached):
        return known[1]  # read from this very file earlier in this process: no second load of the tensors
    blob = _load(name, root, download=False)
    line = f"{name}: {blob['source']}; images sha256 {blob['sha256'][:12]}"
    if cached.exists():
        _SOURCES[str(cached)] = (_file_stamp(cached), line)
    return line
