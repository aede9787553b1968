"""Change points over the nights: a seeded simulation of nightly histories, and the units.

The simulation: 60 nights a history; each night's value is the median of 12 rounds whose
log values have the metric's per-round noise (0.5 %, 2 % or 5 %). Half the histories
get one step, at a random night, of twice the minimum detectable effect of a
comparison of 12 rounds: ``MDE = 2.8 * noise / sqrt(12)`` (z(0.975) + z(0.8) = 2.8).
The acceptance of the nightly rule: at most one false change point per 100 nights (every
night asks again, as the nightly does); at least 90 % of the steps reported within three
nights of their start (the night it starts and the two after) and placed within one night;
no change point in full histories with single-night spikes of five times the per-round
noise, and no more false change points in them when every night asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.judge.changepoints import (
    CONFIRM_NIGHTS,
    CONFIRM_NIGHTS_EXACT,
    MIN_NIGHTS,
    MIN_NIGHTS_EXACT,
    ChangePoint,
    Direction,
    NotEnoughNights,
    commit_range,
    detect,
    opens_regression,
)

NIGHTS = 60
ROUNDS = 12
NOISES = (0.005, 0.02, 0.05)
MDE_PER_NOISE = 2.8 / math.sqrt(ROUNDS)
THRESHOLD = 0.05


@dataclass(frozen=True)
class History:
    values: list[float]
    noise: float
    step_at: int | None = None
    step_log: float = 0.0
    spikes: tuple[int, ...] = ()


def _nights(rng: np.random.Generator, noise: float, drift: float = 0.0) -> np.ndarray:
    """The log value of each night: the median of ROUNDS rounds of per-round noise ``noise``.

    ``drift`` adds noise between nights that the rounds do not see, in units of the
    noise of a night's median.
    """
    medians = np.median(rng.normal(0.0, noise, size=(NIGHTS, ROUNDS)), axis=1)
    night_noise = math.sqrt(math.pi / 2) * noise / math.sqrt(ROUNDS)
    return medians + rng.normal(0.0, drift * night_noise, size=NIGHTS)


def _histories(seed: int, count: int) -> list[History]:
    """``count`` histories; every other one has a step of 2 MDE (random night and sign)."""
    rng = np.random.default_rng(seed)
    histories = []
    for k in range(count):
        noise = NOISES[k % len(NOISES)]
        log = _nights(rng, noise)
        if k % 2 == 0:
            histories.append(History(list(100.0 * np.exp(log)), noise))
            continue
        step_at = int(rng.integers(MIN_NIGHTS, NIGHTS - CONFIRM_NIGHTS + 1))
        step_log = float(rng.choice([-1.0, 1.0])) * 2 * MDE_PER_NOISE * noise
        log[step_at:] += step_log
        histories.append(History(list(100.0 * np.exp(log)), noise, step_at, step_log))
    return histories


def _spiky_histories(seed: int, count: int) -> list[History]:
    """No step; three single-night spikes of five times the noise, 3 nights apart at least."""
    rng = np.random.default_rng(seed)
    histories = []
    for k in range(count):
        noise = NOISES[k % len(NOISES)]
        log = _nights(rng, noise)
        while True:
            spikes = np.sort(rng.choice(np.arange(3, NIGHTS), size=3, replace=False))
            if np.all(np.diff(spikes) > 3):
                break
        log[spikes] += rng.choice([-1.0, 1.0], size=3) * 5 * noise
        histories.append(History(list(100.0 * np.exp(log)), noise, spikes=tuple(spikes.tolist())))
    return histories


def _changes(history: History, nights: int | None = None) -> list[ChangePoint]:
    values = history.values if nights is None else history.values[:nights]
    return detect(values, noise=history.noise, rounds=ROUNDS, threshold=THRESHOLD, better="lower")


def _near(index: int, indices: Sequence[int]) -> bool:
    return any(abs(index - other) <= 1 for other in indices)


def _online(history: History) -> tuple[list[int], int]:
    """Every night from MIN_NIGHTS on asks again: the change points new that night, and nights."""
    seen: list[int] = []
    new: list[int] = []
    for nights in range(MIN_NIGHTS, NIGHTS + 1):
        for cp in _changes(history, nights):
            if not _near(cp.index, seen):
                seen.append(cp.index)
                new.append(cp.index)
    return new, NIGHTS - MIN_NIGHTS + 1


HISTORIES = _histories(seed=20260515, count=200)
SPIKY = _spiky_histories(seed=20260516, count=45)


def test_the_simulation_has_half_its_histories_stepped_at_every_noise_level() -> None:
    stepped = [h for h in HISTORIES if h.step_at is not None]
    assert len(stepped) == 100
    assert {h.noise for h in stepped} == set(NOISES)
    assert {h.step_log > 0 for h in stepped} == {True, False}


def test_at_most_one_false_change_point_per_100_nights_when_every_night_asks() -> None:
    false_points = 0
    nights = 0
    for history in HISTORIES:
        new, asked = _online(history)
        if history.step_at is not None:
            new = [index for index in new if abs(index - history.step_at) > 1]
        false_points += len(new)
        nights += asked
    assert false_points / nights <= 1 / 100, f"{false_points} false change points in {nights}"


def test_nights_noisier_than_their_rounds_raise_no_more_false_change_points() -> None:
    # Drift between nights three times the noise of a night's median: the scale comes
    # from the nights themselves, so false change points stay under one per 100 nights.
    rng = np.random.default_rng(20260517)
    false_points = 0
    nights = 0
    for k in range(60):
        noise = NOISES[k % len(NOISES)]
        history = History(list(100.0 * np.exp(_nights(rng, noise, drift=3.0))), noise)
        new, asked = _online(history)
        false_points += len(new)
        nights += asked
    assert false_points / nights <= 1 / 100, f"{false_points} false change points in {nights}"


def test_nine_steps_in_ten_open_a_regression_within_three_nights_placed_within_one() -> None:
    stepped = [h for h in HISTORIES if h.step_at is not None]
    reported = 0
    for history in stepped:
        assert history.step_at is not None
        # The step is the bad direction, and beyond the threshold (set at one MDE).
        better: Literal["lower", "higher"] = "lower" if history.step_log > 0 else "higher"
        threshold = MDE_PER_NOISE * history.noise
        for last in range(history.step_at, history.step_at + CONFIRM_NIGHTS):
            cp = opens_regression(
                history.values[: last + 1],
                noise=history.noise,
                rounds=ROUNDS,
                threshold=threshold,
                better=better,
            )
            if cp is not None:
                reported += abs(cp.index - history.step_at) <= 1
                assert cp.direction is Direction.SLOWER and cp.beyond_threshold
                break
    assert reported >= 0.9 * len(stepped), f"{reported} of {len(stepped)} steps"


def test_the_full_history_places_nine_steps_in_ten_within_one_night() -> None:
    stepped = [h for h in HISTORIES if h.step_at is not None]
    placed = sum(
        _near(h.step_at, [cp.index for cp in _changes(h)]) for h in stepped if h.step_at is not None
    )
    assert placed >= 0.9 * len(stepped)


def test_a_regression_opens_on_one_night_only() -> None:
    # After the night that reports it, the same step is not reported again.
    history = next(h for h in HISTORIES if h.step_at is not None and h.step_at < 40)
    assert history.step_at is not None
    better: Literal["lower", "higher"] = "lower" if history.step_log > 0 else "higher"
    threshold = MDE_PER_NOISE * history.noise
    reports = [
        opens_regression(
            history.values[: last + 1],
            noise=history.noise,
            rounds=ROUNDS,
            threshold=threshold,
            better=better,
        )
        for last in range(history.step_at, NIGHTS)
    ]
    opened = [cp.index for cp in reports if cp is not None]
    assert len(opened) == 1 and abs(opened[0] - history.step_at) <= 1


def test_single_night_spikes_report_no_change_point() -> None:
    for history in SPIKY:
        assert _changes(history) == [], history.spikes


def test_spikes_add_no_false_change_points_when_every_night_asks() -> None:
    # Chance change points still happen, at the rate of clean histories; one beside a
    # spike (s - 2 .. s + 1, where a spike at s could show) at most once in 100 spikes.
    false_points = 0
    beside = 0
    nights = 0
    for history in SPIKY:
        new, asked = _online(history)
        false_points += len(new)
        beside += sum(any(s - 2 <= i <= s + 1 for s in history.spikes) for i in new)
        nights += asked
    spikes = sum(len(history.spikes) for history in SPIKY)
    assert false_points / nights <= 1 / 100, f"{false_points} change points in {nights} nights"
    assert beside <= spikes / 100, f"{beside} change points beside {spikes} spikes"


def test_a_spike_in_a_flat_history_is_no_change_point() -> None:
    for spike in (5.0, 50.0):
        values = [100.0] * 40
        values[20] *= math.exp(spike * 0.02)
        found = detect(values, noise=0.02, rounds=ROUNDS, threshold=0.001, better="lower")
        assert found == [], spike


def test_a_spike_on_the_latest_nights_opens_no_regression() -> None:
    rng = np.random.default_rng(7)
    noise = 0.02
    flat = list(100.0 * np.exp(_nights(rng, noise)[:30]))
    for back in range(CONFIRM_NIGHTS):
        values = list(flat)
        values[-1 - back] *= math.exp(5 * noise)
        cp = opens_regression(values, noise=noise, rounds=ROUNDS, threshold=0.001, better="lower")
        assert cp is None, back


def test_a_spike_needs_more_than_its_neighbours_to_open_a_step() -> None:
    # Steady nights (the calibrated noise sets the scale), then two nights a little high
    # and a spike: the median of the last three is significant, but not without the spike.
    noise = 0.02
    night_noise = math.sqrt(math.pi / 2) * noise / math.sqrt(ROUNDS)
    steady = [100.0] * 27
    spiked = [*steady, *(100.0 * math.exp(k * night_noise) for k in (2.0, 2.5, 50.0))]

    def tonight(values: list[float]) -> ChangePoint | None:
        return opens_regression(values, noise=noise, rounds=ROUNDS, threshold=0.001, better="lower")

    assert tonight(spiked) is None
    stepped = [*steady, *(100.0 * math.exp(4.0 * night_noise) for _ in range(CONFIRM_NIGHTS))]
    assert tonight(stepped[:-1]) is None
    cp = tonight(stepped)
    assert cp is not None and cp.index == 27 and cp.nights_after == CONFIRM_NIGHTS


def _step_series(before: float, after: float, *, seed: int = 3, nights: int = 30) -> list[float]:
    rng = np.random.default_rng(seed)
    noise = 0.01 * rng.standard_normal(nights)
    levels = np.where(np.arange(nights) < nights // 2, before, after)
    return list(levels * np.exp(noise))


def test_a_throughput_drop_is_slower_when_higher_is_better() -> None:
    values = _step_series(100.0, 80.0)
    (higher,) = detect(values, noise=0.02, rounds=ROUNDS, threshold=0.05, better="higher")
    assert higher.index == 15
    assert higher.direction is Direction.SLOWER and higher.regression
    assert higher.ratio_low < 0.8 < higher.ratio_high and higher.ratio_high < 1.0
    (lower,) = detect(values, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower")
    assert lower.direction is Direction.FASTER and not lower.regression
    assert lower.beyond_threshold


def test_a_step_within_the_threshold_is_found_but_not_a_regression() -> None:
    values = _step_series(100.0, 103.0)
    (cp,) = detect(values, noise=0.005, rounds=ROUNDS, threshold=0.05, better="lower")
    assert cp.direction is Direction.SLOWER
    assert not cp.beyond_threshold and not cp.regression
    assert cp.nights_before == 15 and cp.nights_after == 15


def test_two_steps_are_both_found() -> None:
    rng = np.random.default_rng(11)
    levels = np.repeat([100.0, 120.0, 90.0], 15)
    values = list(levels * np.exp(0.01 * rng.standard_normal(levels.size)))
    found = detect(values, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower")
    assert [cp.index for cp in found] == [15, 30]
    assert [cp.direction for cp in found] == [Direction.SLOWER, Direction.FASTER]


def test_exact_mode_calls_any_persisting_change_a_change() -> None:
    values = [10.0] * 5 + [10.01] * 3
    (cp,) = detect(values, threshold=0.05, better="lower", exact=True)
    assert (cp.index, cp.last_before) == (5, 4)
    assert cp.ratio == cp.ratio_low == cp.ratio_high == pytest.approx(1.001)
    assert cp.direction is Direction.SLOWER and not cp.beyond_threshold
    (big,) = detect([10.0] * 4 + [12.0] * 2, threshold=0.05, better="lower", exact=True)
    assert big.regression


def test_exact_mode_skips_a_one_night_blip() -> None:
    assert (
        detect([10.0] * 4 + [12.0] + [10.0] * 3, threshold=0.05, better="lower", exact=True) == []
    )
    # A new value on the latest night only is not a change yet: it needs a second night.
    values = [10.0] * 4 + [12.0]
    assert detect(values, threshold=0.05, better="lower", exact=True) == []
    assert opens_regression(values, threshold=0.05, better="lower", exact=True) is None
    confirmed = [*values, 12.0]
    assert CONFIRM_NIGHTS_EXACT == 2
    cp = opens_regression(confirmed, threshold=0.05, better="lower", exact=True)
    assert cp is not None and cp.index == 4
    assert opens_regression([*confirmed, 12.0], threshold=0.05, better="lower", exact=True) is None


def test_exact_mode_spans_a_blip_between_two_levels() -> None:
    values = [10.0, 10.0, 11.0, 12.0, 12.0]
    (cp,) = detect(values, threshold=0.05, better="higher", exact=True)
    assert (cp.last_before, cp.index) == (1, 3)
    assert cp.ratio == pytest.approx(1.2) and cp.direction is Direction.FASTER
    assert commit_range(["a", "b", "c", "d", "e"], cp) == ("b", "d")


def test_commit_range_names_the_last_commit_before_and_the_first_after() -> None:
    values = _step_series(100.0, 80.0)
    shas = [f"sha{night}" for night in range(len(values))]
    (cp,) = detect(values, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower")
    assert commit_range(shas, cp) == ("sha14", "sha15")
    with pytest.raises(ValueError, match="expected at least 16 commits, got 10"):
        commit_range(shas[:10], cp)


def test_a_short_history_raises_not_enough_nights() -> None:
    with pytest.raises(NotEnoughNights, match="needs 8 nights, has 7") as caught:
        detect([1.0] * 7, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower")
    assert (caught.value.needed, caught.value.have) == (MIN_NIGHTS, 7)
    with pytest.raises(NotEnoughNights, match="needs 4 nights, has 3"):
        detect([1.0] * 3, threshold=0.05, better="lower", exact=True)
    assert MIN_NIGHTS_EXACT == 4
    with pytest.raises(NotEnoughNights, match="needs 20 nights, has 10"):
        opens_regression([1.0] * 10, threshold=0.05, better="lower", exact=True, min_nights=20)
    with pytest.raises(ValueError, match="min_nights 5: expected at least 6"):
        detect([1.0] * 9, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower", min_nights=5)


def test_the_first_night_with_enough_history_can_open_a_regression() -> None:
    values = [10.0] * 6 + [12.0] * 2
    cp = opens_regression(values, threshold=0.05, better="lower", exact=True, min_nights=8)
    assert cp is not None and cp.index == 6


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_a_value_that_is_not_a_positive_number_names_its_night(bad: float) -> None:
    values = [1.0] * 9
    values[4] = bad
    with pytest.raises(HarnessError, match=r"night 4 of the history: value .*positive finite"):
        detect(values, noise=0.02, rounds=ROUNDS, threshold=0.05, better="lower")


def test_statistical_mode_needs_noise_and_rounds() -> None:
    with pytest.raises(ValueError, match="needs noise and rounds unless exact"):
        detect([1.0] * 9, threshold=0.05, better="lower")
    with pytest.raises(ValueError, match="noise inf: expected a positive finite"):
        detect([1.0] * 9, noise=math.inf, rounds=ROUNDS, threshold=0.05, better="lower")
    with pytest.raises(ValueError, match=r"threshold 0\.0: expected a positive"):
        detect([1.0] * 9, noise=0.02, rounds=ROUNDS, threshold=0.0, better="lower")
    with pytest.raises(ValueError, match="better 'up'"):
        detect([1.0] * 9, noise=0.02, rounds=ROUNDS, threshold=0.05, better="up")  # type: ignore[arg-type]
