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
    """The paper's least-squares setting as stated (PAPERS.md), 100 iterations.

    Measured (seed 0): to ||x - x*|| < 1e-4 CSGD 166 uploads (77 iterations), LAG-S 214 (22),
    SGD 230 (23); over seeds 0-4 CSGD 186 +- 24 (85 +- 5 iterations, the paper's 85; its "20
    uploads" is our count per worker), SGD 230 +- 12 (23 +- 1, the paper's 24). Over the 100
    iterations CSGD sends 21% of SGD's messages. With batches of 1-2 samples a worker's fresh
    gradient differs from its held one by E||g - g_hat||^2 ~ 8 (d + 1) ||x - x*||^2 ~ 900
    at k = 1 against a threshold <= 4.25, so every worker uploads for the first iterations.
    The bounds are loose (CSGD/SGD to the target over seeds 0-4: 0.81 +- 0.10, seed 0 0.72;
    LAG-S/SGD 0.88-0.96): they assert the direction of each claim, not the paper's size.
    """
    result = experiments.least_squares(iterations=100)
    runs = result["modes"]
    sgd = runs["sgd"]["uploads_to_target"]
    csgd = runs["csgd"]["uploads_to_target"]
    assert sgd is not None and csgd is not None, result["table"]
    assert csgd < 0.9 * sgd, result["table"]
    assert runs["csgd"]["ratio_to_sgd"] < 0.3, result["table"]  # per iteration: most censored
    assert runs["lag"]["uploads_to_target"] >= 0.85 * sgd, result["table"]
    assert runs["lag"]["ratio_to_sgd"] > 0.85, result["table"]
    # The forced phase: with B <= 2 every worker's innovation dwarfs the slack.
    first = np.diff([0] + runs["csgd"]["uploads"])[:4]
    assert np.all(first == 10), first


def test_bad_experiment_input():
    with pytest.raises(ValueError, match="num_workers \\(7\\) must divide"):
        experiments.softmax_regression(num_workers=7, iterations=1)
    with pytest.raises(ValueError, match="dataset"):
        experiments.softmax_regression(dataset="cifar", iterations=1)
    with pytest.raises(ValueError, match="modes"):
        experiments.least_squares(modes=("adam",), iterations=1)
