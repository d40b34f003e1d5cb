"""A sweep of 8 configurations in one vmapped program equals the 8 runs done one by one."""

import numpy as np
import pytest

from aimcjax.app import data, specs
from aimcjax.app.experiments import training


@pytest.fixture(scope="module")
def digits():
    return data.standardize(data.load("digits"))


def test_sweep_of_8_equals_runs_one_by_one(digits):
    # 4 devices (asymmetry 0..0.3, symmetric points 0..0.18) x 2 seeds; pulse mode, so the
    # stochastic rounding and the pulse noise are drawn from the same per-run keys either way.
    grid = specs.parse_grid("softbounds:asymmetry=0/0.1/0.2/0.3,dw_min_std=0.3")
    devices = [d for _, d in grid for _ in (0, 1)]
    seeds = [s for _ in grid for s in (0, 1)]
    cfg = training.TrainConfig(model="mlp", algorithm="analog-sgd", epochs=2, train_size=60, lr=0.1)
    swept = training.sweep(cfg, digits, devices, seeds)
    assert swept["test_acc"].shape == (8, 3)
    for r, (dev, seed) in enumerate(zip(devices, seeds)):
        one = training.train(cfg, digits, dev, seed)
        # Same keys and same maths; batched and unbatched XLA programs may round float32 sums
        # in a different order (~1e-7 relative), which could flip a stochastic rounding only
        # where it sits exactly on a threshold. Accuracies are counts over 359 test images.
        np.testing.assert_array_equal(one["test_acc"], swept["test_acc"][r])
        np.testing.assert_allclose(one["test_loss"], swept["test_loss"][r], rtol=1e-5)
    # The grid is not degenerate: different devices/seeds give different runs.
    assert len({tuple(np.round(l, 6)) for l in swept["test_loss"]}) == 8


def test_sweep_through_a_noisy_periphery_equals_runs_one_by_one(digits):
    # The periphery's noise comes from per-run keys and its bound management is a while loop
    # per read: vmapped, both must still give every run its own result.
    grid = specs.parse_grid("softbounds:asymmetry=0/0.3")
    devices = [d for _, d in grid]
    cfg = training.TrainConfig(
        model="mlp",
        algorithm="analog-sgd",
        epochs=1,
        train_size=30,
        lr=0.1,
        periphery=specs.parse_periphery("default:out_noise=0.2"),
    )
    swept = training.sweep(cfg, digits, devices, [0, 1])
    for r, (dev, seed) in enumerate(zip(devices, [0, 1])):
        one = training.train(cfg, digits, dev, seed)
        np.testing.assert_array_equal(one["test_acc"], swept["test_acc"][r])
        np.testing.assert_allclose(one["test_loss"], swept["test_loss"][r], rtol=1e-5)


def test_chunked_sweep_equals_unchunked(digits):
    cfg = training.TrainConfig(model="mlp", algorithm="digital", epochs=1, train_size=60)
    full = training.sweep(cfg, digits, [None] * 3, [0, 1, 2])
    chunked = training.sweep(cfg, digits, [None] * 3, [0, 1, 2], chunk_size=2)
    np.testing.assert_allclose(full["test_loss"], chunked["test_loss"], rtol=1e-6)


def test_sweep_input_validation(digits):
    cfg = training.TrainConfig(model="mlp", algorithm="analog-sgd", epochs=1)
    with pytest.raises(ValueError, match="needs a device"):
        training.sweep(cfg, digits, [None], [0])
    with pytest.raises(ValueError, match="differ in length"):
        training.sweep(cfg, digits, [specs.parse("power")], [0, 1])
    with pytest.raises(ValueError, match="algorithm must be one of"):
        training.TrainConfig(algorithm="adam")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        training.TrainConfig(epochs=0)
