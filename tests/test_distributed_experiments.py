"""CSGD experiments: loose checks of the paper's claims (exact numbers: docs/README-distributed.md)."""

import numpy as np
import pytest

from aimcjax.experiments import csgd as experiments


@pytest.fixture(scope="module")
def digits():
    # 110 iterations cover the paper's target (10% test error) for every mode; the batch
    # (50 x 1.01^k) stays below the shard size (150), so gradients stay stochastic.
    # One padded batch shape (the shard size) for all iterations: one compilation per mode.
    return experiments.softmax_regression(iterations=110, bucket_growth=1024)


@pytest.mark.slow
def test_csgd_reaches_target_with_far_fewer_uploads(digits, tmp_path):
    runs = digits["modes"]
    sgd, csgd = runs["sgd"]["uploads_to_target"], runs["csgd"]["uploads_to_target"]
    assert sgd is not None and csgd is not None, digits["table"]
    assert csgd < 0.25 * sgd, digits["table"]  # paper: 115 vs 2330 (5%)


@pytest.mark.slow
def test_lag_s_censors_almost_nothing_with_stochastic_gradients(digits):
    # LAG-S has no slack: gradient noise keeps every innovation above its vanishing threshold.
    assert digits["modes"]["lag"]["ratio_to_sgd"] > 0.9, digits["table"]
    assert digits["modes"]["sgd"]["ratio_to_sgd"] == 1.0


@pytest.mark.slow
def test_results_table_and_plot(digits, tmp_path):
    table = digits["table"]
    assert "| csgd |" in table and "| lag |" in table and "2330" in table
    path = tmp_path / "digits.png"
    experiments.plot(digits, path)
    assert path.stat().st_size > 1000
    for run in digits["modes"].values():
        assert len(run["uploads"]) == len(run["metric"]) == 110
        assert np.all(np.diff(run["uploads"]) >= 0)


@pytest.mark.slow
def test_least_squares_censors_and_converges():
    result = experiments.least_squares(iterations=40, batch_max=256, target=1e-2,
                                       bucket_growth=16)
    runs = result["modes"]
    sgd = runs["sgd"]["uploads_to_target"]
    assert sgd is not None and runs["csgd"]["uploads_to_target"] is not None, result["table"]
    assert runs["csgd"]["uploads_to_target"] < sgd, result["table"]
    assert runs["csgd"]["ratio_to_sgd"] < 0.5, result["table"]
    assert runs["lag"]["uploads_to_target"] >= 0.9 * sgd, result["table"]


def test_bad_experiment_input():
    with pytest.raises(ValueError, match="num_workers \\(7\\) must divide"):
        experiments.softmax_regression(num_workers=7, iterations=1)
    with pytest.raises(ValueError, match="dataset"):
        experiments.softmax_regression(dataset="cifar", iterations=1)
    with pytest.raises(ValueError, match="modes"):
        experiments.least_squares(modes=("adam",), iterations=1)
