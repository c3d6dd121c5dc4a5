import gzip
import hashlib
import io
import json
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from qmia.augment import augment
from qmia.data import (
    CIFAR10_CLASSES,
    DATA_VERSION,
    DatasetUnavailable,
    data_checksum,
    data_source,
    dataset_info,
    load_dataset,
)
from qmia.splits import SPLITS, half_subset, make_splits
from qmia.store import atomic_save


def test_splits_are_disjoint_seeded_and_sized():
    a = make_splits(1797, 400, seed=3)
    assert list(a) == list(SPLITS)
    allidx = torch.cat(list(a.values()))
    assert len(allidx) == 1600 and len(torch.unique(allidx)) == 1600
    assert all(torch.equal(a[s], make_splits(1797, 400, seed=3)[s]) for s in SPLITS)
    assert not torch.equal(a["target_in"], make_splits(1797, 400, seed=4)["target_in"])
    with pytest.raises(ValueError, match="need 2000"):
        make_splits(1797, 500, seed=0)


def test_half_subset_balances_inclusion_per_example():
    cand = torch.arange(100, 300)
    sets = [half_subset(cand, i, 4, seed=0) for i in range(4)]
    counts = torch.zeros(300, dtype=torch.long)
    for s in sets:
        assert set(s.tolist()) <= set(cand.tolist()) and len(set(s.tolist())) == len(s)
        counts[s] += 1
    assert (counts[100:] == 2).all()  # every candidate in exactly half of the 4 models
    assert all(len(s) == 100 for s in sets)  # exactly half each: models of one size train together
    assert torch.equal(sets[1], half_subset(cand, 1, 4, 0)) and not torch.equal(sets[1], half_subset(cand, 1, 4, 1))
    with pytest.raises(ValueError, match="out of range"):
        half_subset(cand, 4, 4, 0)


def test_digits_loads_offline_and_is_cached(_isolated):
    x, y = load_dataset("digits")
    assert x.dtype == torch.uint8 and x.shape == (1797, 1, 16, 16) and y.shape == (1797,)
    assert set(y.tolist()) == set(range(10))
    assert (_isolated / "cache" / "data" / f"digits-v{DATA_VERSION}.pt").is_file()
    x2, _ = load_dataset("digits")
    assert torch.equal(x, x2)


def test_first_load_records_the_source_and_checksum_in_the_tensor_file(_isolated):
    cached = _isolated / "cache" / "data" / f"digits-v{DATA_VERSION}.pt"
    x, y = load_dataset("digits")
    blob = torch.load(cached, weights_only=True)
    digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    assert blob["source"] == "scikit-learn load_digits, resized to 16x16" and blob["sha256"] == digest == data_checksum(
        x, y
    )
    assert not cached.with_suffix(".json").exists()  # one file: a kill cannot leave pixels without their provenance
    line = data_source("digits")
    assert line == f"digits: scikit-learn load_digits, resized to 16x16; images sha256 {digest[:12]}"
    assert data_source("digits") == line and load_dataset("digits")[0].equal(x)  # stable; the cache is still used


def test_changed_cached_pixels_are_moved_aside_and_decoded_again(_isolated, capfd):
    cached = _isolated / "cache" / "data" / f"digits-v{DATA_VERSION}.pt"
    x, _ = load_dataset("digits")
    before = data_source("digits")
    blob = torch.load(cached, weights_only=True)
    blob["x"] = blob["x"].clone()
    blob["x"][0, 0, 0, 0] ^= 1  # one pixel differs from the recorded sha256
    atomic_save(blob, cached)
    x2, _ = load_dataset("digits")
    assert torch.equal(x2, x) and data_source("digits") == before  # decoded again from the source
    assert "do not match their recorded sha256" in capfd.readouterr().err
    assert list(cached.parent.glob("*.damaged-*"))


def test_an_older_cache_is_upgraded_from_its_sidecar_or_decoded_again(_isolated, capfd):
    cached = _isolated / "cache" / "data" / f"digits-v{DATA_VERSION}.pt"
    sidecar = cached.with_suffix(".json")
    x, y = load_dataset("digits")
    atomic_save({"x": x, "y": y}, cached)  # the format before: tensors only, provenance in a sidecar
    sidecar.write_text(json.dumps({"source": "recorded source", "sha256": data_checksum(x, y)}))
    assert data_source("digits").startswith("digits: recorded source; images sha256 ")  # checksum matches: upgraded
    assert torch.load(cached, weights_only=True)["source"] == "recorded source" and not sidecar.exists()
    atomic_save({"x": x, "y": y}, cached)  # the sidecar lost (killed between the two writes)
    assert data_source("digits").startswith("digits: scikit-learn load_digits")  # decoded again, source known
    assert "source was never recorded" in capfd.readouterr().err


def _idx(path, arr, labels=False):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_gzipped_idx_in_a_read_only_root(tmp_path):
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    (tmp_path / "root").chmod(0o555)
    raw.chmod(0o555)
    x, y = load_dataset("fashion_mnist", tmp_path / "root", download=False)
    assert x.shape == (17, 1, 28, 28) and x.dtype == torch.uint8 and y.shape == (17,)


def _jpeg(color):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_cifar10_from_an_image_folder_tarball(tmp_path):
    tar_path = tmp_path / "cifar10-jpeg-q75.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for split, n in (("train", 2), ("test", 1)):
            for ci, cls in enumerate(CIFAR10_CLASSES[:3]):
                for i in range(n):
                    data = _jpeg((ci * 100, 10, 200))
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    x, y = load_dataset("cifar10", tmp_path, download=False)
    assert x.shape == (9, 3, 32, 32) and y.tolist() == [0, 0, 1, 1, 2, 2, 0, 1, 2]
    assert abs(int(x[2, 0].float().mean()) - 100) < 4  # class 1's red channel survived decoding
    assert data_source("cifar10").startswith(
        "cifar10: image-folder tarball cifar10-jpeg-q75.tar.gz (JPEG copy); images sha256 "
    )


def test_cifar10_from_an_image_folder(tmp_path):
    for split in ("train", "test"):
        for ci, cls in enumerate(CIFAR10_CLASSES):
            d = tmp_path / "cifar10" / split / cls
            d.mkdir(parents=True)
            (d / "0000.jpg").write_bytes(_jpeg((ci * 20, 0, 0)))
    x, y = load_dataset("cifar10", tmp_path, download=False)
    assert x.shape == (20, 3, 32, 32) and y[:10].tolist() == list(range(10))


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("cifar10", tmp_path / "none", download=False)
    msg = str(e.value)
    assert str(tmp_path / "none") in msg and "QMIA_DATA" in msg and "--data-root" in msg and "PROFILE=smoke" in msg
    with pytest.raises(DatasetUnavailable):
        data_source("cifar10", tmp_path / "none")  # never downloads


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(ValueError, match="digits, fashion_mnist, cifar10"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist"])
def test_augmentation_keeps_shape_and_varies_per_image(name):
    info = dataset_info(name)
    x = torch.rand(1, info.channels, info.image_size, info.image_size).repeat(16, 1, 1, 1)
    out = augment(x, info, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert len({tuple(o.flatten()[:200].tolist()) for o in out}) > 4  # images get different transforms
    again = augment(x, info, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
