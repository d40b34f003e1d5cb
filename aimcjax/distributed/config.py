"""Settings of communication-censored SGD and its batch / slack schedules.

References:
    [CSGD] Li, Wu, Chen, Li, Ling. Communication-Censored Distributed Stochastic Gradient
    Descent. arXiv:1909.03631 (IEEE TNNLS 2021).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import numpy as np

MODES = ("csgd", "lag", "sgd")
SLACK_SCALINGS = ("workers_squared", "none")
MOVE_WINDOWS = ("authors", "lag")
_FLOAT32_MAX = 3.4028234663852886e38


def _check_finite_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def _check_rate(name: str, value: object) -> None:
    number = _check_finite_number(name, value)
    if not (0.0 < number < math.inf):
        raise ValueError(f"{name} must lie in (0, inf), got {number}")


def _check_rule_options(config: CensorConfig) -> None:
    """The threshold-rule options of :class:`CensorConfig` (see there)."""
    if config.slack_scaling not in SLACK_SCALINGS:
        raise ValueError(
            f"slack_scaling must be one of {SLACK_SCALINGS}, got {config.slack_scaling!r}"
        )
    if config.move_window not in MOVE_WINDOWS:
        raise ValueError(f"move_window must be one of {MOVE_WINDOWS}, got {config.move_window!r}")
    if not isinstance(config.force_first_upload, bool):
        raise TypeError(
            f"force_first_upload must be a bool, got {type(config.force_first_upload).__name__}"
        )


def move_window_length(config: CensorConfig) -> int:
    """How many parameter moves the threshold's window sums: D - 1 (authors) or D (LAG)."""
    return config.window - 1 if config.move_window == "authors" else config.window


@dataclasses.dataclass(frozen=True)
class CensorConfig:
    """When a worker uploads its gradient, and how batch and slack evolve [CSGD].

    Worker m uploads its fresh mini-batch gradient g_m at iteration k only if
    ``||g_m - g_hat_m||^2 > tau^k``, otherwise the server reuses the stale ``g_hat_m``.
    By default the threshold is the one the authors' code computes (github
    Weiyu-USTC/CSGD, ``tao`` in every experiment script; [CSGD] arXiv:1909.03631):

        tau^k = (xi / (alpha^2 D) * [k >= D-1] * sum_{j=1..D-1} ||x^{k+1-j} - x^{k-j}||^2
                 + sigma^k) / M^2

    The window holds the last D iterates, so it sums D - 1 parameter moves, and the move
    term is absent until D iterates are stored (k < D - 1: tau^k = sigma^k / M^2). The held
    gradients start at zero and nothing is forced at k = 0: the test alone decides (a worker
    whose gradient stays below the threshold is never heard from: in the authors' saved
    least-squares run 8 of 10 workers never upload). Gradients are means over a worker's mini-batch and the
    server averages the workers.

    The library's earlier choices remain as options: ``slack_scaling="none"`` adds sigma^k
    outside the 1/M^2, ``move_window="lag"`` sums D moves from k = 0 (zeros before the first
    D moves, as [LAG]), ``force_first_upload=True`` makes every worker upload at k = 0.

    Args:
        mode: ``"csgd"`` (censoring with slack sigma^k), ``"lag"`` (LAG-S: the same test with
            sigma^k = 0) or ``"sgd"`` (always upload).
        learning_rate: alpha in the threshold; set it to the server optimizer's step size.
        xi: weight of the parameter-move term (default 1/60 as in [CSGD]).
        window: D, the number of recent iterates in the threshold.
        sigma0: slack sigma^0 >= 0; sigma^k = sigma0 * sigma_decay^k.
        sigma_decay: eta_2 in (0, 1] (a growing slack would overflow and censor everything).
        batch0: B^0 >= 1 (may be fractional: B^k = min(B_max, floor(B^0 * eta_1^k))).
        batch_growth: eta_1 in (0, inf).
        batch_max: B_max >= B^0 (default: floor(B^0)).
        max_staleness: if set, a worker that has been censored this many consecutive
            iterations uploads at the next one.
        slack_scaling: ``"workers_squared"`` (sigma^k / M^2, the authors' code) or ``"none"``
            (sigma^k added as is).
        move_window: ``"authors"`` (D - 1 moves once D iterates are stored) or ``"lag"``
            (the last D moves, zeros before there are D).
        force_first_upload: every worker uploads at k = 0 (default False, as the authors).

    Example:
        >>> cfg = CensorConfig(learning_rate=0.2, sigma0=4.25, sigma_decay=0.85,
        ...                    batch0=1.2, batch_growth=1.2, batch_max=100_000)
        >>> batch_size(cfg, 3)
        2

    References:
        [CSGD] Algorithm 1, Section V and the authors' code (github Weiyu-USTC/CSGD).
    """

    mode: str = "csgd"
    learning_rate: float = 0.1
    xi: float = 1.0 / 60.0
    window: int = 10
    sigma0: float = 0.0
    sigma_decay: float = 1.0
    batch0: float = 1.0
    batch_growth: float = 1.0
    batch_max: int | None = None
    max_staleness: int | None = None
    slack_scaling: str = "workers_squared"
    move_window: str = "authors"
    force_first_upload: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        _check_rate("learning_rate", self.learning_rate)
        xi = _check_finite_number("xi", self.xi)
        if not 0 <= xi < math.inf:
            # xi = inf makes the first threshold inf * 0 = NaN: no upload passes the test again.
            raise ValueError(f"xi must be a finite number >= 0, got {self.xi}")
        if isinstance(self.window, bool) or not isinstance(self.window, int):
            raise TypeError(f"window must be an int, got {type(self.window).__name__}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if _check_finite_number("sigma0", self.sigma0) < 0:
            raise ValueError(f"sigma0 must be >= 0, got {self.sigma0}")
        if math.isinf(self.sigma0):
            raise ValueError("sigma0 must be finite")
        _check_rate("sigma_decay", self.sigma_decay)
        if self.sigma_decay > 1:
            # A growing slack overflows float32 after finitely many iterations; from then on the
            # threshold is inf (or 0 * inf = NaN) and every upload is censored for good.
            raise ValueError(
                f"sigma_decay must lie in (0, 1] (a decaying slack, eta_2 of [CSGD]), "
                f"got {self.sigma_decay}"
            )
        _check_rate("batch_growth", self.batch_growth)
        if _check_finite_number("batch0", self.batch0) < 1 or math.isinf(self.batch0):
            raise ValueError(f"batch0 must be a finite number >= 1, got {self.batch0}")
        # The threshold's move coefficient xi / (alpha^2 D) is applied in float32: it must be
        # finite there, else inf * 0 = NaN at the first iterations censors every upload.
        coefficient = xi / (float(self.learning_rate) ** 2 * self.window)
        if coefficient > _FLOAT32_MAX:
            raise ValueError(
                f"xi / (learning_rate**2 * window) = {coefficient:.3g} overflows float32 "
                f"(max {_FLOAT32_MAX:.3g}): learning_rate={self.learning_rate} is too small "
                f"for xi={self.xi}"
            )
        if self.batch_max is None:
            object.__setattr__(self, "batch_max", math.floor(self.batch0))
        if isinstance(self.batch_max, bool) or not isinstance(self.batch_max, int):
            raise TypeError(f"batch_max must be an int, got {type(self.batch_max).__name__}")
        if self.batch0 > self.batch_max:
            raise ValueError(f"batch0 ({self.batch0}) must not exceed batch_max ({self.batch_max})")
        if self.max_staleness is not None:
            if isinstance(self.max_staleness, bool) or not isinstance(self.max_staleness, int):
                raise TypeError("max_staleness must be an int or None")
            if self.max_staleness < 1:
                raise ValueError(f"max_staleness must be >= 1, got {self.max_staleness}")
        _check_rule_options(self)


def _batch_max(config: CensorConfig) -> int:
    """B_max (``CensorConfig.__post_init__`` replaces None by ``floor(batch0)``)."""
    return cast(int, config.batch_max)


def batch_size(config: CensorConfig, k: int) -> int:
    """B^k = min(B_max, floor(B^0 * eta_1^k)) for iteration k >= 0 (host-side, exact)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    batch_max = _batch_max(config)
    log_b = math.log(config.batch0) + k * math.log(config.batch_growth)
    if log_b >= math.log(batch_max):
        return batch_max
    return max(1, min(batch_max, math.floor(math.exp(log_b) * (1 + 1e-12))))


def padded_batch_size(config: CensorConfig, k: int, bucket_growth: int = 2) -> int:
    """Shape a batch of iteration k is padded to: the next power of ``bucket_growth``,
    capped at B_max.

    A jitted step compiles once per padded size, so a growing batch costs at most
    ``ceil(log_{bucket_growth}(B_max)) + 1`` compilations; the padding is masked out of
    the loss. A larger ``bucket_growth`` compiles less and pads more.
    """
    if isinstance(bucket_growth, bool) or not isinstance(bucket_growth, int) or bucket_growth < 2:
        raise ValueError(f"bucket_growth must be an int >= 2, got {bucket_growth!r}")
    b = batch_size(config, k)
    padded = 1
    while padded < b:
        padded *= bucket_growth
    return min(_batch_max(config), padded)


def batch_mask(
    config: CensorConfig, k: int, num_workers: int, bucket_growth: int = 2
) -> np.ndarray:
    """Boolean mask of shape (num_workers, padded_batch_size) marking the B^k real examples."""
    import numpy as np

    padded = padded_batch_size(config, k, bucket_growth)
    row = np.arange(padded) < batch_size(config, k)
    return np.broadcast_to(row, (num_workers, padded)).copy()
