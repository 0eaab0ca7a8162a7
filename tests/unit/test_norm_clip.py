"""The norm filter's scaling option (`FilterConfig.norm_clip`): an update over `norm_k x median` is scaled down to
the median, aggregated as that scaled copy and not paid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.carryover import config_from_json, config_to_json
from aggregator.filters import FilterConfig, RejectReason, SubmissionMeta, filter_round, norm_scales
from aggregator.pipeline import PipelineConfig, RoundInputs, Submission, run_round
from flchain.explain import explain

DIM = 64
OPTIMUM = np.linspace(-1.0, 1.0, DIM)


def _rows(norms: list[float], seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(len(norms), DIM))
    rows *= (np.array(norms) / np.linalg.norm(rows, axis=1))[:, None]
    return rows.astype(np.float32)


def _metas(n: int) -> list[SubmissionMeta]:
    return [SubmissionMeta(f"0x{i + 1:040x}", bytes([i + 1]) * 32, 10 + i, 0) for i in range(n)]


def test_scales_bring_only_the_updates_over_the_bound_to_the_median() -> None:
    norms = np.array([1.0, 0.9, 1.1, 1.0, 4.0, 10.0, 0.2])
    config = FilterConfig(norm_k=3.0, norm_clip=True)

    scales = norm_scales(norms, range(len(norms)), config)

    assert sorted(scales) == [4, 5]
    assert scales[4] * 4.0 == pytest.approx(1.0) and scales[5] * 10.0 == pytest.approx(1.0)
    assert norm_scales(norms, range(len(norms)), FilterConfig(norm_k=3.0)) == {}  # off by default
    assert norm_scales(norms, [4, 5], config) == {}  # too few updates for a median: no norm check at all


def test_an_update_over_the_bound_is_kept_with_its_scale_and_one_under_it_is_still_rejected() -> None:
    rows = _rows([1.0, 0.9, 1.1, 1.0, 0.95, 4.0, 0.2])
    clipped = filter_round(rows, _metas(7), (), FilterConfig(norm_clip=True))
    rejected = filter_round(rows, _metas(7), (), FilterConfig())

    assert [v.reason for v in rejected.verdicts][5:] == [RejectReason.NORM_OUTLIER] * 2
    assert [v.reason for v in clipped.verdicts] == [None] * 6 + [RejectReason.NORM_OUTLIER]
    assert clipped.verdicts[5].detail.startswith("norm 4 > 3 x median 1:")
    assert "aggregated scaled by 0.25 to the median" in clipped.verdicts[5].detail
    assert set(clipped.scales) == {5} and rejected.scales == {}
    assert len(clipped.fingerprints(1, _metas(7))) == 6  # the scaled one is fingerprinted as submitted
    np.testing.assert_array_equal(clipped.sketches[5], rejected.sketches[5])


def _honest(seed: int, scale: float = 1.0) -> NDArray[np.float32]:
    noise = np.random.default_rng(seed).normal(0.0, 0.05, DIM)
    return (-scale * (0.5 * OPTIMUM + noise)).astype(np.float32)


def _inputs(deltas: list[NDArray[np.float32]]) -> RoundInputs:
    subs = tuple(
        Submission(account=f"0x{i + 1:040x}", digest=bytes([i + 1]) * 32, cid=f"cid-{i}", num_samples=100,
                   block_number=10 + i, log_index=0, delta=delta)
        for i, delta in enumerate(deltas)
    )
    return RoundInputs(task_id=1, round_id=1, base=np.zeros(DIM, dtype=np.float32), submissions=subs,
                       budget_wei=10**18)


def _loss(theta: NDArray[np.float64]) -> float:
    return float(np.sum((np.asarray(theta) - OPTIMUM) ** 2))


def test_a_scaled_update_is_aggregated_as_its_copy_at_the_median_and_not_paid() -> None:
    config = PipelineConfig(filters=FilterConfig(norm_clip=True))
    deltas = [_honest(seed) for seed in range(5)] + [_honest(5, scale=10.0)]
    outcome = run_round(_inputs(deltas), _loss, config)
    big = outcome.trainers[5]
    scale = float(np.median([np.linalg.norm(d.astype(np.float64)) for d in deltas])) / big.update_norm
    copy = (deltas[5].astype(np.float64) * scale).astype(np.float32)
    submitted_small = run_round(_inputs([*deltas[:5], copy]), _loss, config)

    assert big.status == "accepted" and big.aggregated and big.payout_wei == 0 and big.value_score == 0.0
    assert big.update_norm == pytest.approx(float(np.linalg.norm(deltas[5])))  # the report keeps what was sent
    assert f"scaled by {scale:.4g}" in big.detail and big.scaled_by == pytest.approx(scale, rel=1e-6)
    assert all(t.scaled_by is None for t in outcome.trainers[:5])
    np.testing.assert_array_equal(outcome.new_params, submitted_small.new_params)
    assert submitted_small.trainers[5].payout_wei > 0 and submitted_small.trainers[5].detail == ""
    assert all(t.payout_wei > 0 for t in outcome.trainers[:5])
    assert 10**18 - 10 < sum(t.payout_wei for t in outcome.trainers) <= 10**18  # the whole budget to the others
    assert outcome.ratings[big.account].good < outcome.ratings[outcome.trainers[0].account].good
    sentence = explain(status=big.status, reason=None, reason_detail=big.detail, value_score=big.value_score,
                       loss_reduction=1.0, same_work_as=None, rating_weight=None, payout_wei=0, budget_wei=10**18)
    assert sentence.startswith("not paid: over the round's norm bound (norm ")


def test_a_scaled_update_that_raises_the_loss_is_not_aggregated() -> None:
    config = PipelineConfig(filters=FilterConfig(norm_clip=True))
    deltas = [_honest(seed) for seed in range(5)]
    outcome = run_round(_inputs([*deltas, (-4.0 * deltas[0]).astype(np.float32)]), _loss, config)
    flipped = outcome.trainers[5]

    assert flipped.status == "accepted" and "scaled by" in flipped.detail
    assert flipped.loss_score is not None and flipped.loss_score < 0
    assert not flipped.aggregated and flipped.payout_wei == 0
    assert all(t.aggregated for t in outcome.trainers[:5]) and outcome.aggregated_count == 5
    np.testing.assert_array_equal(outcome.new_params, run_round(_inputs(deltas), _loss, config).new_params)


def test_without_the_option_the_round_rejects_the_large_update_and_scaling_changes_nothing_else() -> None:
    deltas = [_honest(seed) for seed in range(5)] + [_honest(5, scale=10.0)]
    plain = run_round(_inputs(deltas), _loss, PipelineConfig())
    clipped = run_round(_inputs(deltas[:5]), _loss, PipelineConfig(filters=FilterConfig(norm_clip=True)))
    alone = run_round(_inputs(deltas[:5]), _loss, PipelineConfig())

    assert plain.trainers[5].reason is RejectReason.NORM_OUTLIER and not plain.trainers[5].aggregated
    np.testing.assert_array_equal(clipped.new_params, alone.new_params)  # nothing over the bound: same bits
    assert [t.payout_wei for t in clipped.trainers] == [t.payout_wei for t in alone.trainers]


def test_the_option_is_recorded_in_the_round_config_and_absent_when_off() -> None:
    on = replace(PipelineConfig(), filters=FilterConfig(norm_clip=True))

    assert "norm_clip" not in config_to_json(PipelineConfig())["filters"]  # earlier configs keep their bytes
    assert config_to_json(on)["filters"]["norm_clip"] is True
    assert config_from_json(config_to_json(on)) == on
    assert config_from_json(config_to_json(PipelineConfig())) == PipelineConfig()


def test_hostile_rows_are_judged_before_any_scaling_and_a_replay_of_a_scaled_update_is_caught() -> None:
    """Non-finite and duplicate updates keep their rejections with the option on; the scaled one is fingerprinted
    as submitted, so a later copy of it by another trainer is a replay."""
    rows = _rows([1.0, 0.9, 1.1, 1.0, 0.95, 40.0, 1.0])
    rows[6] = np.nan
    metas = _metas(7)
    metas[4] = SubmissionMeta(metas[4].trainer, metas[0].digest, metas[4].block_number, 0)  # same bytes as row 0
    rows[4] = rows[0]
    config = FilterConfig(norm_clip=True)
    first = filter_round(rows, metas, (), config)

    assert [v.reason for v in first.verdicts] == [None, None, None, None, RejectReason.DUPLICATE, None,
                                                  RejectReason.NON_FINITE]
    assert set(first.scales) == {5}
    copy = SubmissionMeta("0x" + "e" * 40, b"\xee" * 32, 99, 0)
    later = filter_round(np.stack([rows[5] * np.float32(1.001), *rows[1:4]]), [copy, *_metas(4)[1:]],
                         first.fingerprints(1, metas), config)
    assert later.verdicts[0].reason is RejectReason.COPY_OF_EARLIER and later.scales == {}
