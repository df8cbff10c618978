"""The dataset table: digits offline, a CIFAR-layout folder made here, an image folder, event framing,
and the messages for what is missing or unsafe."""

import pickle

import numpy as np
import pytest
import torch

from eventstereo.errors import InputError
from eventstereo.events.types import make_events
from nas.classify.data import DATASETS, DataOptions, augment_images, frame_events, load_dataset


def make_cifar10(root, n=4, seed=0):
    """A CIFAR-10 python-version folder with n images per batch (labels 0..9 cycling)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        labels = [(k * n + i) % 10 for i in range(n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[:, :1024] = np.array(labels, dtype=np.uint8)[:, None] * 25  # red channel encodes the class
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    return root


def test_digits_is_offline_and_split():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.num_classes == 10 and set(d.y_test.tolist()) == set(range(10)) and not d.augment


def test_cifar10_folder_is_read(tmp_path):
    make_cifar10(tmp_path)
    d = load_dataset("cifar10", DataOptions(root=tmp_path))
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32) and d.augment
    assert d.y_train.tolist()[:5] == [0, 1, 2, 3, 4] and d.y_test.tolist() == [0, 1, 2, 3]
    red = d.x_train[:, 0].mean((-2, -1))  # normalised, but still ordered by the class written into it
    assert torch.all(red[1:10] > red[:9])


def test_missing_and_unsafe_cifar_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="needs --root"):
        load_dataset("cifar10")
    with pytest.raises(InputError, match="data_batch_1 is missing.*cifar-10-batches-py"):
        load_dataset("cifar10", DataOptions(root=tmp_path))
    make_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [print]}, f)  # would call code
    with pytest.raises(InputError, match="data_batch_3.*refusing to load builtins.print"):
        load_dataset("cifar10", DataOptions(root=tmp_path))
    with pytest.raises(InputError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_neuromorphic_sets_never_download(tmp_path):
    with pytest.raises(InputError, match="'nmnist' not found.*NMNIST"):
        load_dataset("nmnist", DataOptions(root=tmp_path))
    assert {"nmnist", "dvsgesture", "cifar10dvs"} <= set(DATASETS)


def test_imagefolder(tmp_path):
    import cv2

    for split, n in (("train", 3), ("val", 1)):
        for c, value in (("cat", 40), ("dog", 200)):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(tmp_path / split / c / f"{i}.png"), np.full((20, 24, 3), value, np.uint8))
    d = load_dataset("imagefolder", DataOptions(root=tmp_path, image_size=16))
    assert d.x_train.shape == (6, 3, 16, 16) and d.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.y_test.tolist() == [0, 1] and d.num_classes == 2
    assert d.x_test[1].mean() > d.x_test[0].mean()


def test_event_samples_become_t_sbt_frames():
    ev = make_events(x=[0, 1, 2, 3], y=[0, 0, 1, 1], t=[0, 10, 20, 39], p=[1, 0, 1, 1])
    frames, settings = frame_events(ev, (4, 2), 4)
    assert frames.shape == (4, 2, 2, 4) and settings.channels == 2
    assert frames.sum() == 4 and frames[:, 1].sum() == 1  # one OFF event
    assert [frames[k].sum() for k in range(4)] == [1, 1, 1, 1]  # one event per quarter of the span


def test_augmentation_is_seeded_and_keeps_shape():
    x = torch.randn(5, 3, 8, 8)
    a = augment_images(x, torch.Generator().manual_seed(0))
    b = augment_images(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_tonic_reader_frames_local_samples(tmp_path, monkeypatch):
    import tonic.datasets

    class FakeNMNIST:  # what tonic's reader gives once its files are in place
        sensor_size = (6, 4, 2)

        def __init__(self, save_to, train=True, **kw):
            assert save_to == str(tmp_path)
            self.n = 5 if train else 2

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            ev = np.zeros(4, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
            ev["x"], ev["y"], ev["t"], ev["p"] = [0, 1, 2, 5], [0, 1, 2, 3], [0, 100, 200, 299], [1, 0, 1, 1]
            return ev, i % 2

    monkeypatch.setattr(tonic.datasets, "NMNIST", FakeNMNIST)
    d = load_dataset("nmnist", DataOptions(root=tmp_path, timesteps=3))
    assert d.x_train.shape == (5, 3, 2, 4, 6) and d.x_test.shape == (2, 3, 2, 4, 6) and d.is_events
    assert d.sbt is not None and d.sbt.channels == 2 and d.num_classes == 2
    assert float(d.x_train[0].sum()) == 4
