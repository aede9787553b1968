"""The statistics of a comparison: per-round ratios, their estimate, interval, test and noise.

The unit of evidence is the *round*: each side's statistic (a median, a p95, ...)
is computed per round, then compared round against round (paired, when both
sides ran the same interleaved rounds) or side against side (unpaired). Samples
inside a round are correlated, so nothing here ever resamples single samples;
the callers pass one number per round.

Everything works on the log scale (a ratio of 1.10 is ``log 1.10``), so a
change and its inverse weigh alike, and every function accepts a batch of rows
along the leading axes (the simulation tests run thousands of suites at once).

Guarantees:

* Deterministic: every random draw comes from the ``numpy.random.Generator``
  the caller passes; the same data and seed give the same numbers.
* Paired estimate: the Hodges-Lehmann estimate of the per-round log ratios (the
  median of their Walsh averages, the estimate that goes with the Wilcoxon
  signed-rank test); its interval a percentile bootstrap over rounds; its
  p-value the two-sided Wilcoxon signed-rank test (scipy: exact for up to 50
  rounds without ties or zeros, normal approximation otherwise). Rows whose log
  ratios are all zero get p = 1.
* Unpaired estimate: the ratio of the two sides' medians of round statistics;
  its interval a percentile bootstrap of each side's rounds independently; its
  p-value the two-sided Mann-Whitney U test.
* The noise (the standard deviation of one round's log ratio) is estimated
  robustly (:func:`robust_sd`, Tukey's biweight midvariance), so one wild round
  of twelve (another process busy on the machine) cannot multiply the noise,
  and the MDE behind a "no change", tenfold. The p-value is a rank test's,
  robust already.
* Benjamini-Hochberg adjusted p-values over all the tests of one comparison.
* The minimum detectable effect uses a normal approximation:
  ``MDE = exp((z(1 - a/2) + z(power)) * se) - 1`` with ``se = noise / sqrt(n)``
  (paired) and ``a`` the conservative per-test level ``q / m``. It is infinite
  when the rank test cannot reach ``a`` at all with that many rounds (the
  smallest two-sided Wilcoxon p-value of ``n`` rounds is ``2 / 2**n``).
* :func:`classify` is the only place a row's verdict is decided: a change is a
  regression only when significant after adjustment *and* beyond the threshold;
  a change that is not significant is "no change" only when the minimum
  detectable effect is within the threshold, "inconclusive" otherwise.

Why one module: it is one statistical method, called as one namespace (``stats.``) by
:mod:`harness.judge.compare`. The estimates, the noise, the minimum detectable effect and
:func:`classify` agree on one scale (log ratios, the noise of one round) and share private
helpers (``_percentiles``, ``_z``, ``_floor``) that a split would import across modules.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

__all__ = [
    "CONFIDENCE",
    "POWER",
    "RESAMPLES",
    "Estimate",
    "RowVerdict",
    "benjamini_hochberg",
    "bootstrap_paired",
    "bootstrap_unpaired",
    "classify",
    "hodges_lehmann",
    "minimum_detectable_effect",
    "paired_estimate",
    "per_test_alpha",
    "rank_sum_floor",
    "rank_sum_p",
    "robust_sd",
    "rounds_needed",
    "signed_rank_floor",
    "signed_rank_p",
    "unpaired_estimate",
]

CONFIDENCE = 0.95
POWER = 0.8
RESAMPLES = 2000

FloatArray = npt.NDArray[np.float64]


class RowVerdict(enum.StrEnum):
    """The verdict of one row (workload x metric x statistic) of a comparison.

    ``faster``/``slower`` mean better/worse in the metric's own direction (for a
    throughput, higher is better).
    """

    FASTER = "faster"
    SLOWER = "slower"
    NO_CHANGE = "no change"
    REGRESSION = "regression"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    REFERENCE = "reference"  # a peer's or a baseline's own figure: shown, never judged
    # A wall row its noise left undecided, decided by its CPU path's exact instruction
    # count (harness.judge.twins): the verdict is on that twin's row.
    BY_INSTRUCTIONS = "by instructions"


@dataclass(frozen=True, slots=True)
class Estimate:
    """One test's numbers, on the ratio scale (candidate / base).

    ``noise`` is the standard deviation of a one-round log ratio (paired: over
    the rounds; unpaired: ``sqrt(var_base + var_candidate)`` of the log round
    statistics); ``standard_error`` that of the estimate's log.
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_raw: float
    noise: float
    standard_error: float
    rounds: int


def hodges_lehmann(log_ratios: npt.ArrayLike) -> FloatArray:
    """The median of the Walsh averages ``(d_i + d_j) / 2, i <= j`` along the last axis."""
    d = np.asarray(log_ratios, dtype=float)
    first, second = np.triu_indices(d.shape[-1])
    walsh = (d[..., first] + d[..., second]) / 2.0
    return np.asarray(np.median(walsh, axis=-1), dtype=float)


@contextmanager
def _quiet_scipy() -> Iterator[None]:
    """Silence scipy's small-sample and 0/0 warnings: their cases are handled by the callers."""
    with (
        warnings.catch_warnings(),
        np.errstate(invalid="ignore", divide="ignore"),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def signed_rank_p(log_ratios: npt.ArrayLike) -> FloatArray:
    """Two-sided Wilcoxon signed-rank p-values along the last axis (1 for all-zero rows)."""
    d = np.asarray(log_ratios, dtype=float)
    all_zero = np.all(d == 0.0, axis=-1)
    if d.shape[-1] < 2:
        return np.ones(d.shape[:-1])
    # Give all-zero rows harmless data; their p-value is set to 1 below.
    safe = np.where(all_zero[..., None], np.arange(1.0, d.shape[-1] + 1.0), d)
    with _quiet_scipy():
        p = np.asarray(scipy_stats.wilcoxon(safe, axis=-1).pvalue, dtype=float)
    p = np.where(all_zero | ~np.isfinite(p), 1.0, p)
    return np.asarray(np.minimum(p, 1.0), dtype=float)


def rank_sum_p(base: npt.ArrayLike, candidate: npt.ArrayLike) -> FloatArray:
    """Two-sided Mann-Whitney U p-values along the last axis (1 when undefined)."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(candidate, dtype=float)
    if x.shape[-1] < 1 or y.shape[-1] < 1:
        return np.ones(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]))
    with _quiet_scipy():
        p = np.asarray(scipy_stats.mannwhitneyu(x, y, axis=-1).pvalue, dtype=float)
    return np.asarray(np.where(np.isfinite(p), np.minimum(p, 1.0), 1.0), dtype=float)


def _percentiles(estimates: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail], axis=-1)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def bootstrap_paired(
    log_ratios: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[FloatArray, FloatArray]:
    """Percentile-bootstrap interval (log scale) of the Hodges-Lehmann estimate.

    Resamples whole rounds with replacement, ``resamples`` times, along the last
    axis (the same draws for every row of a batch).
    """
    d = np.asarray(log_ratios, dtype=float)
    n = d.shape[-1]
    picks = rng.integers(0, n, size=(resamples, n))
    return _percentiles(hodges_lehmann(d[..., picks]), confidence)  # (..., resamples, n)


def bootstrap_unpaired(
    base: npt.ArrayLike,
    candidate: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[FloatArray, FloatArray]:
    """Percentile-bootstrap interval (log scale) of ``median(candidate) - median(base)``.

    Each side's units (log round statistics) are resampled independently.
    """
    x = np.asarray(base, dtype=float)
    y = np.asarray(candidate, dtype=float)
    pick_x = rng.integers(0, x.shape[-1], size=(resamples, x.shape[-1]))
    pick_y = rng.integers(0, y.shape[-1], size=(resamples, y.shape[-1]))
    differences = np.median(y[..., pick_y], axis=-1) - np.median(x[..., pick_x], axis=-1)
    return _percentiles(np.asarray(differences, dtype=float), confidence)


BIWEIGHT_C = 9.0  # the biweight's tuning constant: values beyond 9 MADs weigh nothing


def robust_sd(values: npt.ArrayLike) -> FloatArray:
    """A standard deviation along the last axis that one outlier cannot inflate.

    Tukey's biweight midvariance (Mosteller & Tukey 1977; astropy's
    ``biweight_midvariance``): values more than ``BIWEIGHT_C`` median absolute
    deviations from the median weigh nothing, the others less the farther they
    are. About 87 % as efficient as the standard deviation on normal data, so a
    quiet row's noise is not overstated either. Where more than half of the
    values are equal (the MAD is 0) but not all, the plain standard deviation
    of the values without the one farthest from the median. Infinite for fewer
    than two values.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1], math.inf)
    center = np.median(x, axis=-1, keepdims=True)
    deviations = x - center
    mad = np.median(np.abs(deviations), axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = deviations / (BIWEIGHT_C * mad)
        inside = np.abs(u) < 1.0
        numerator = np.sum(np.where(inside, deviations**2 * (1.0 - u**2) ** 4, 0.0), axis=-1)
        denominator = np.sum(np.where(inside, (1.0 - u**2) * (1.0 - 5.0 * u**2), 0.0), axis=-1)
        biweight = np.sqrt(n * numerator) / np.abs(denominator)
    order = np.argsort(np.abs(deviations), axis=-1)
    kept = np.take_along_axis(x, order[..., :-1], axis=-1) if n >= 3 else x
    fallback = np.std(kept, ddof=1, axis=-1)
    return np.asarray(np.where(mad[..., 0] > 0.0, biweight, fallback), dtype=float)


def paired_estimate(
    log_ratios: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """The paired test of one row: per-round log ratios ``log(candidate / base)``."""
    d = np.asarray(log_ratios, dtype=float)
    if d.ndim != 1 or d.size < 1:
        raise ValueError("paired_estimate needs a 1-d array of at least one round")
    n = int(d.size)
    center = float(hodges_lehmann(d))
    if n >= 2:
        low, high = bootstrap_paired(d, rng, resamples=resamples, confidence=confidence)
        noise = float(robust_sd(d))
    else:
        low, high = np.asarray(center), np.asarray(center)
        noise = math.inf
    return Estimate(
        ratio=math.exp(center),
        ci_low=math.exp(float(low)),
        ci_high=math.exp(float(high)),
        p_raw=float(signed_rank_p(d)),
        noise=noise,
        standard_error=noise / math.sqrt(n),
        rounds=n,
    )


def unpaired_estimate(
    base: npt.ArrayLike,
    candidate: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """The unpaired test of one row: each side's log round statistics."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(candidate, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.size < 1 or y.size < 1:
        raise ValueError("unpaired_estimate needs two 1-d arrays of at least one round each")
    center = float(np.median(y) - np.median(x))
    if x.size >= 2 and y.size >= 2:
        low, high = bootstrap_unpaired(x, y, rng, resamples=resamples, confidence=confidence)
        var_x, var_y = float(robust_sd(x)) ** 2, float(robust_sd(y)) ** 2
        noise = math.sqrt(var_x + var_y)
        standard_error = math.sqrt(var_x / x.size + var_y / y.size)
    else:
        low, high = np.asarray(center), np.asarray(center)
        noise = standard_error = math.inf
    return Estimate(
        ratio=math.exp(center),
        ci_low=math.exp(float(low)),
        ci_high=math.exp(float(high)),
        p_raw=float(rank_sum_p(x, y)),
        noise=noise,
        standard_error=standard_error,
        rounds=int(min(x.size, y.size)),
    )


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values along the last axis (an empty row stays empty)."""
    p = np.asarray(p_values, dtype=float)
    if p.shape[-1] == 0:
        return p.copy()
    adjusted = scipy_stats.false_discovery_control(p, axis=-1, method="bh")
    return np.asarray(adjusted, dtype=float)


def per_test_alpha(q: float, tests: int) -> float:
    """The conservative per-test level of a suite of ``tests`` tests at FDR ``q``: ``q / m``."""
    return q / max(tests, 1)


def _z(probability: float) -> float:
    return float(scipy_stats.norm.ppf(probability))


def signed_rank_floor(alpha: float) -> int:
    """The fewest rounds whose exact two-sided Wilcoxon test can reach ``alpha`` (2/2**n <= a)."""
    return max(1, math.ceil(math.log2(2.0 / alpha)))


def rank_sum_floor(alpha: float) -> int:
    """The fewest rounds per side whose exact Mann-Whitney test can reach ``alpha``.

    The smallest two-sided p-value of ``n`` rounds a side is ``2 / C(2n, n)``.
    """
    n = 1
    while 2.0 / math.comb(2 * n, n) > alpha:
        n += 1
    return n


def _floor(alpha: float, paired: bool) -> int:
    return signed_rank_floor(alpha) if paired else rank_sum_floor(alpha)


def minimum_detectable_effect(
    standard_error: npt.ArrayLike,
    rounds: npt.ArrayLike,
    alpha: float,
    *,
    power: float = POWER,
    paired: bool = True,
) -> FloatArray:
    """Smallest relative change detected with ``power`` at two-sided level ``alpha``.

    ``exp((z(1 - alpha/2) + z(power)) * standard_error) - 1`` (normal
    approximation); infinite when ``rounds`` (per side when unpaired) is below
    :func:`signed_rank_floor` (paired) or :func:`rank_sum_floor` (unpaired): the
    rank test could not reach ``alpha`` whatever the change.
    """
    se = np.asarray(standard_error, dtype=float)
    n = np.asarray(rounds, dtype=float)
    z_total = _z(1.0 - alpha / 2.0) + _z(power)
    with np.errstate(over="ignore", invalid="ignore"):
        effect = np.expm1(z_total * se)
    reachable = n >= _floor(alpha, paired)
    return np.asarray(np.where(reachable & np.isfinite(effect), effect, math.inf), dtype=float)


def rounds_needed(
    noise: float,
    threshold: float,
    alpha: float,
    *,
    power: float = POWER,
    paired: bool = True,
) -> int | None:
    """Rounds (paired; per side when unpaired) to detect ``threshold`` with ``power``.

    ``ceil(((z(1 - alpha/2) + z(power)) * noise / log(1 + threshold))**2)`` (the
    same for both designs when ``noise`` is the sd of one round's log ratio),
    at least the rank test's floor; None when the noise is unknown (infinite).
    """
    if not math.isfinite(noise) or threshold <= 0.0:
        return None
    z_total = _z(1.0 - alpha / 2.0) + _z(power)
    needed = math.ceil((z_total * noise / math.log1p(threshold)) ** 2)
    return max(needed, _floor(alpha, paired), 2)


def classify(
    ratio: npt.ArrayLike,
    p_adjusted: npt.ArrayLike,
    mde: npt.ArrayLike,
    *,
    q: float,
    threshold: npt.ArrayLike,
    higher_is_better: npt.ArrayLike,
) -> npt.NDArray[np.str_]:
    """The verdict of each row (as :class:`RowVerdict` values), broadcasting all inputs.

    * significant (``p_adjusted <= q``) and worse beyond ``threshold``: regression;
    * significant and worse within it: slower; significant and better: faster;
    * not significant: inconclusive when ``mde > threshold``, else no change.

    "Beyond the threshold" is symmetric on the log scale: ``|log ratio| > log(1 + t)``.
    A ratio that is not finite is an error.
    """
    r = np.asarray(ratio, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(r)
    better_up = np.asarray(higher_is_better, dtype=bool)
    limit = np.log1p(np.asarray(threshold, dtype=float))
    worse = np.where(better_up, log_r < 0.0, log_r > 0.0)
    better = np.where(better_up, log_r > 0.0, log_r < 0.0)
    significant = np.asarray(p_adjusted, dtype=float) <= q
    beyond = np.abs(log_r) > limit
    detectable = np.log1p(np.asarray(mde, dtype=float)) <= limit
    choices = np.select(
        [
            ~np.isfinite(log_r),
            significant & worse & beyond,
            significant & worse,
            significant & better,
            ~detectable,
        ],
        [
            RowVerdict.ERROR.value,
            RowVerdict.REGRESSION.value,
            RowVerdict.SLOWER.value,
            RowVerdict.FASTER.value,
            RowVerdict.INCONCLUSIVE.value,
        ],
        default=RowVerdict.NO_CHANGE.value,
    )
    return np.asarray(choices, dtype=np.str_)
