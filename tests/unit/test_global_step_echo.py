"""Game version 5: an update that repeats the model's last global step (public: the difference of the last two
published models) is nobody's new work. It plays no part in the value game, is worth 0, is left out of the
aggregate and says so in the report; honest updates, and every round before version 5, are valued as before."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.contribution import ContributionConfig, Contributions, compute_contributions
from aggregator.outcome import AggregationState
from aggregator.outer import OuterConfig, OuterState
from aggregator.pipeline import PipelineConfig, RoundInputs, Submission, run_round
from aggregator.rules import AggregationRule, CenteredClipState, RuleParams, aggregate
from aggregator.same_work import SCREEN_ROWS, same_work, same_work_groups
from aggregator.value_gram import ClipSpec
from bench.behaviours import AttackerMemory, AttackParams, Behaviour, LocalTraining, SimTrainer, round_deltas
from flchain.explain import explain
from flchain.ml import attacks
from flchain.ml.data import Dataset
from flchain.ml.params import flatten, global_norm, module_to_params
from flchain.ml.specs import ModelSpec
from flchain.report import RoundReport, TrainerScore

DIM = 400
OPTIMUM = np.linspace(-1.0, 1.0, DIM)


def _quadratic(theta: NDArray[np.floating]) -> float:
    return float(np.sum((np.asarray(theta, dtype=np.float64) - OPTIMUM) ** 2))


def _honest(seed: int) -> NDArray[np.float32]:
    """A step toward the optimum from 0 plus the trainer's own noise (delta = base - local)."""
    return (-(0.3 * OPTIMUM + np.random.default_rng(seed).normal(0.0, 0.05, DIM))).astype(np.float32)


def _last_step() -> NDArray[np.float64]:
    """What last round's aggregate looked like: the mean of other honest updates."""
    return np.mean([_honest(100 + k) for k in range(8)], axis=0).astype(np.float64)


def test_the_centered_cosine_with_the_reference_marks_its_copy_and_leaves_the_groups_alone() -> None:
    step = _last_step()
    rows = np.stack([*(_honest(k) for k in range(7)), (2.5 * step).astype(np.float32)])

    found = same_work(rows, 0.7, gram=True, reference=step)

    assert found.groups == same_work_groups(rows, 0.7, gram=True)
    assert found.reference_cosines is not None
    assert found.reference_cosines[-1] > 0.999 and float(np.max(found.reference_cosines[:-1])) < 0.5
    assert found.reference_plain_cosines is not None and found.reference_plain_cosines[-1] > 0.999
    assert same_work(rows, 0.7, gram=True).reference_cosines is None
    assert same_work(rows, 0.7, gram=True, reference=np.zeros(DIM)).reference_cosines is None
    pair = same_work(rows[-2:], 0.7, gram=True, reference=step)  # two rows: no center, only the plain cosines
    assert pair.reference_cosines is None and pair.reference_plain_cosines is not None
    assert pair.reference_plain_cosines[1] > 0.999 > pair.reference_plain_cosines[0]
    with pytest.raises(ValueError, match="Gram path"):
        same_work(rows, 0.7, reference=step)


def test_the_screened_path_gives_the_cosines_the_gram_path_gives() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=60)
    rows = rng.normal(size=(SCREEN_ROWS + 4, 60))
    rows[7] = 3.0 * reference
    screened = same_work(rows, 0.7, b"seed", gram=True, reference=reference)
    assert screened.reference_cosines is not None and screened.reference_cosines[7] > 0.99

    # the same numbers from the formula, centered by the coordinate median of the rows' units
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    center = np.median(units, axis=0)
    directions, ref = units - center, reference / np.linalg.norm(reference) - center
    want = directions @ ref / np.linalg.norm(directions, axis=1) / np.linalg.norm(ref)
    np.testing.assert_allclose(screened.reference_cosines, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(screened.reference_plain_cosines, units @ (reference / np.linalg.norm(reference)),
                               rtol=1e-9, atol=1e-12)


def _contributions(rows: NDArray[np.float32], reference: NDArray[np.float64] | None, version: int = 5
                   ) -> Contributions:
    params = RuleParams(clip_version=2)

    def rule(x: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(aggregate(AggregationRule.CENTERED_CLIP, x, weights=w, params=params).vector)

    base = np.zeros(DIM)
    return compute_contributions(base, rows, _quadratic, rule, outer_lr=1.0, loss_before=_quadratic(base),
                                 seed=b"s", config=ContributionConfig(game_version=version),
                                 clip=ClipSpec(None, None, 3), reference=reference)


def test_a_repeat_of_the_last_step_is_no_player_and_the_others_keep_their_game() -> None:
    step = _last_step()
    honest = [_honest(k) for k in range(6)]
    rows = np.stack([*honest, (1.7 * step).astype(np.float32)])

    with_echo = _contributions(rows, step)
    without = _contributions(np.stack(honest), step)

    assert with_echo.echoes == (False,) * 6 + (True,)
    assert with_echo.values[-1] == 0.0 and with_echo.weights[-1] == 0.0
    np.testing.assert_allclose(with_echo.values[:-1], without.values, rtol=1e-6, atol=1e-9)
    assert with_echo.estimate.evaluations == without.estimate.evaluations

    before = _contributions(rows, step, version=4)  # version 4 does not look for it: the repeat is paid
    assert not any(before.echoes) and before.values[-1] > 0


def test_a_round_of_repeats_only_values_nothing() -> None:
    """Rows all along the step own the median: their centered directions vanish, the plain cosine still sees them."""
    step = _last_step()
    rows = np.stack([(k * step).astype(np.float32) for k in (1.0, 2.0, 3.0)])
    found = _contributions(rows, step)
    assert found.echoes == (True, True, True) and not found.values.any() and not found.weights.any()


def _sub(index: int, delta: NDArray[np.float32]) -> Submission:
    return Submission(account=f"0x{index + 1:040x}", digest=bytes([index + 1]) * 32, cid=f"cid-{index}",
                      num_samples=100, block_number=10 + index, log_index=0, delta=delta)


@pytest.mark.parametrize("outer", [OuterConfig(), OuterConfig(lr=0.7, momentum=0.5),
                                   OuterConfig(lr=0.7, momentum=0.5, nesterov=True)])
def test_through_run_round_the_repeat_is_not_paid_not_aggregated_and_explained(outer: OuterConfig) -> None:
    aggregate_before, buffer = _last_step(), _last_step() * 1.3 + 0.01
    state = AggregationState(clip=CenteredClipState(center=aggregate_before),
                             outer=OuterState(momentum_buffer=None if outer.momentum == 0 else buffer))
    step = {(0.0, False): aggregate_before, (0.5, False): buffer, (0.5, True): aggregate_before + 0.5 * buffer}[
        (outer.momentum, outer.nesterov)]  # the direction outer.outer_step moved the model in
    honest = [_sub(i, _honest(i)) for i in range(6)]
    echo = _sub(6, (0.9 * step).astype(np.float32))
    config = PipelineConfig(outer=outer)
    inputs = RoundInputs(task_id=1, round_id=4, base=np.zeros(DIM, dtype=np.float32),
                         submissions=(*honest, echo), budget_wei=10**18, state=state)

    outcome = run_round(inputs, _quadratic, config)
    alone = run_round(replace(inputs, submissions=tuple(honest)), _quadratic, config)

    row = outcome.trainers[-1]
    assert row.status == "accepted" and row.repeats_global_step and not row.aggregated
    assert row.payout_wei == 0 and row.value_score == 0.0
    assert all(not r.repeats_global_step and r.payout_wei > 0 for r in outcome.trainers[:-1])
    np.testing.assert_allclose(outcome.new_params, alone.new_params, rtol=1e-6, atol=1e-7)

    old = run_round(inputs, _quadratic, replace(config, contribution=ContributionConfig(game_version=4)))
    assert not old.trainers[-1].repeats_global_step and old.trainers[-1].payout_wei > 0


def test_the_explanation_names_the_repeat() -> None:
    text = explain(status="accepted", reason=None, reason_detail=None, value_score=0.0, loss_reduction=0.1,
                   same_work_as=None, rating_weight=0.5, payout_wei=0, budget_wei=10, repeats_global_step=True)
    assert text.startswith("not paid: repeats the global model's last step")


def test_the_global_free_rider_sends_the_last_step_at_the_last_rounds_median_norm() -> None:
    spec = ModelSpec("tiny", "mlp", (4,), 3, hidden=(5,))
    rng = np.random.default_rng(0)
    data = [Dataset(rng.normal(size=(12, 4)).astype(np.float32), rng.integers(0, 3, 12), f"t{i}", (4,), 3)
            for i in range(3)]
    trainers = [SimTrainer(f"0x{i + 1:040x}", data[i], kind, seed=i)
                for i, kind in enumerate([Behaviour.HONEST, Behaviour.HONEST, Behaviour.FREE_RIDER_GLOBAL])]
    memory, training = AttackerMemory(), LocalTraining(local_steps=3, batch_size=4)
    first_base = module_to_params(spec.build())
    first = round_deltas(trainers, first_base, spec, training, 1, AttackParams(), memory)
    assert not flatten(first[2])[0].any()  # no step yet: zeros

    second_base = {name: array - 0.1 * first[0][name] for name, array in first_base.items()}
    second = round_deltas(trainers, second_base, spec, training, 2, AttackParams(), memory)
    step = flatten(first_base)[0].astype(np.float64) - flatten(second_base)[0]
    sent = flatten(second[2])[0].astype(np.float64)
    assert global_norm(second[2]) == pytest.approx(float(np.median([global_norm(d) for d in first])), rel=1e-5)
    assert float(sent @ step) / (np.linalg.norm(sent) * np.linalg.norm(step)) > 0.9999
    with pytest.raises(ValueError, match="norm"):
        attacks.free_rider_global(first_base, second_base, float("nan"))


def test_the_report_row_says_so_and_other_rows_keep_their_bytes() -> None:
    from tests.unit.test_trainer_rewards import ME, minimal_report, payout_tree

    row = TrainerScore(account=ME, digest="0x" + "ab" * 32, cid="cid", num_samples=10, block_number=1, log_index=0,
                       status="accepted", rating_mu=25.0, rating_sigma=8.3, final_score=0.0)
    report = minimal_report(1, 2, payout_tree(1, 2, [(ME, 5)]), "", 5).model_copy(update={"trainers": (row,)})
    flagged = report.model_copy(update={"trainers": tuple(
        row.model_copy(update={"repeats_global_step": True}) for row in report.trainers)})

    rows = json.loads(report.to_bytes())["trainers"]
    assert rows and all("repeats_global_step" not in row for row in rows)
    assert all(row["repeats_global_step"] is True for row in json.loads(flagged.to_bytes())["trainers"])
    assert RoundReport.from_bytes(flagged.to_bytes()) == flagged
    assert RoundReport.from_bytes(report.to_bytes()) == report


def test_the_red_team_node_sends_the_step_between_the_bases_it_saw() -> None:
    from bench.redteam.kinds import RedTeamConfig, RedTeamKind
    from bench.redteam.producer import RedTeamProducer
    from trainer.model import GlobalModel
    from trainer.update import UpdateInputs

    spec = ModelSpec("tiny", "mlp", (4,), 3, hidden=(5,))
    first = module_to_params(spec.build())
    second = {name: array - 0.25 for name, array in first.items()}
    data = Dataset(np.zeros((6, 4), dtype=np.float32), np.zeros(6, dtype=np.int64), "toy", (4,), 3)
    inputs = UpdateInputs(spec=spec, dataset=data, train=None, shard_index=0)  # type: ignore[arg-type]
    producer = RedTeamProducer(RedTeamConfig(RedTeamKind.FREE_RIDER_GLOBAL, seed=1), node=None)  # type: ignore[arg-type]

    opening = producer(inputs, None, GlobalModel(b"1", "cid1", first, 0))  # type: ignore[arg-type]
    after = producer(inputs, None, GlobalModel(b"2", "cid2", second, 0))  # type: ignore[arg-type]

    assert opening is not None and not flatten(opening.delta)[0].any()
    assert after is not None
    np.testing.assert_allclose(flatten(after.delta)[0], 0.25, rtol=1e-5)
