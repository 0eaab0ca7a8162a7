"""Attackers' pay: the reliability weight through `run_round` over rounds, and same-round collusion."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.collusion import CollusionError, colluding_originals
from aggregator.filters import FilterVerdict, Fingerprint, RejectReason
from aggregator.pipeline import AggregationState, PipelineConfig, RoundInputs, RoundOutcome, Submission, run_round
from aggregator.ratings import Rating, RatingConfig

DIM = 32
OPTIMUM = np.linspace(-1.0, 1.0, DIM)
HONEST = [f"0x{i:040x}" for i in range(1, 6)]
NOISY = "0x" + "e" * 40


def quadratic_loss(theta: NDArray[np.floating]) -> float:
    return float(np.sum((np.asarray(theta, dtype=np.float64) - OPTIMUM) ** 2))


def _delta(base: NDArray[np.float64], seed: int) -> NDArray[np.float32]:
    noise = np.random.default_rng(seed).normal(0.0, 0.05, DIM)
    return (-(0.3 * (OPTIMUM - base) + noise)).astype(np.float32)


def _submissions(base: NDArray[np.float64], round_id: int, noisy_rejected: bool) -> tuple[Submission, ...]:
    accounts = [*HONEST, NOISY]
    out = []
    for i, account in enumerate(accounts):
        delta = _delta(base, 100 * round_id + i)
        if account == NOISY and noisy_rejected:
            delta = delta * 20.0  # far over the norm filter's 3 x median: rejected
        out.append(Submission(account, bytes([round_id, i]) * 16, f"cid-{round_id}-{i}", 100, 10 * round_id + i, 0,
                              delta=delta))
    return tuple(out)


def _run(rejected_rounds: set[int], rounds: int) -> list[RoundOutcome]:
    base = np.zeros(DIM, dtype=np.float32)
    ratings: dict[str, Rating] = {}
    history: tuple[Fingerprint, ...] = ()
    state = AggregationState()
    outcomes = []
    for r in range(1, rounds + 1):
        inputs = RoundInputs(1, r, base, _submissions(base.astype(np.float64), r, r in rejected_rounds), 10**18,
                             history, ratings, state)
        outcome = run_round(inputs, quadratic_loss, PipelineConfig())
        outcomes.append(outcome)
        base, ratings, history, state = outcome.new_params, dict(outcome.ratings), outcome.fingerprints, outcome.state
    return outcomes


def _share(outcome: RoundOutcome, account: str) -> float:
    paid = {row.account.lower(): row.payout_wei for row in outcome.trainers}
    return paid[account] / sum(paid.values())


def test_an_account_rejected_in_most_rounds_earns_a_falling_share_when_it_slips_through() -> None:
    """Accepted in rounds 1 and 6, rejected (norm outlier) in 2-5: its record is 2 good of 6 played in round 6,
    the honest accounts' 6 of 6, so its weight is ((3/8) / (7/8))^3 = 0.079 of theirs (0.5x0.5x... in round 1
    every account is fresh and equal)."""
    outcomes = _run({2, 3, 4, 5}, 6)
    noisy = [next(row for row in o.trainers if row.account.lower() == NOISY) for o in outcomes]

    assert [row.status for row in noisy] == ["accepted", *["rejected"] * 4, "accepted"]
    assert (noisy[-1].rating.played, noisy[-1].rating.good) == (6, 2)
    honest_share = [np.mean([_share(o, a) for a in HONEST]) for o in outcomes]
    assert _share(outcomes[0], NOISY) == pytest.approx(honest_share[0], rel=0.5)
    assert _share(outcomes[-1], NOISY) < 0.15 * honest_share[-1]
    assert _share(outcomes[-1], NOISY) < 0.15 * _share(outcomes[0], NOISY)
    weight = {row.account.lower(): row.rating_weight for row in outcomes[-1].trainers}
    assert weight[NOISY] / weight[HONEST[0]] == pytest.approx((3 / 7) ** 3, rel=0.1)


def test_without_rejections_the_same_account_keeps_an_honest_share_and_the_rounds_reproduce() -> None:
    first, again = _run(set(), 6), _run(set(), 6)
    last = first[-1]

    assert _share(last, NOISY) == pytest.approx(np.mean([_share(last, a) for a in HONEST]), rel=0.5)
    assert [o.payouts for o in first] == [o.payouts for o in again]
    assert all((r.played, r.good) == (6, 6) for r in last.ratings.values())


def test_the_original_of_a_same_round_copy_is_found_by_digest_or_sketch() -> None:
    sketches = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.01, 0.0], [0.0, 1.0, 0.0], [0.7, 0.7, 0.0],
                         [0.0, 0.0, 1.0]])
    ok, near, dup = FilterVerdict(), FilterVerdict(RejectReason.NEAR_DUPLICATE), FilterVerdict(RejectReason.DUPLICATE)
    digests = [b"a", b"b", b"c", b"b", b"e", b"f"]

    # 2 is a near copy of 0 (cosine 0.99995), 3 has 1's digest, 4 is a "near duplicate" closest to nobody at 0.9
    assert colluding_originals(sketches, [ok, ok, near, dup, near, ok], digests) == frozenset({0, 1})
    assert colluding_originals(sketches, [ok, ok, ok, ok, ok, ok], digests) == frozenset()
    outlier = FilterVerdict(RejectReason.NORM_OUTLIER)
    assert colluding_originals(sketches, [ok, ok, outlier, ok, ok, ok], digests) == frozenset()
    with pytest.raises(CollusionError):
        colluding_originals(sketches[:2], [ok], digests)


def test_reliability_off_gives_the_weights_of_before() -> None:
    off = PipelineConfig(ratings=RatingConfig(reliability_power=0.0))
    base = np.zeros(DIM, dtype=np.float32)
    inputs = RoundInputs(1, 1, base, _submissions(base.astype(np.float64), 1, False), 10**18)
    outcome, on = run_round(inputs, quadratic_loss, off), run_round(inputs, quadratic_loss)

    assert all((r.played, r.good) == (0, 0) for r in outcome.ratings.values())
    for row, row_on in zip(outcome.trainers, on.trainers, strict=True):  # one good round of one: (2/3)^3
        assert row_on.rating_weight == pytest.approx(row.rating_weight * (2 / 3) ** 3)
    for leaf, leaf_on in zip(outcome.payouts, on.payouts, strict=True):  # equal records: the same split
        assert leaf_on.amount_wei == pytest.approx(leaf.amount_wei, rel=1e-12)
