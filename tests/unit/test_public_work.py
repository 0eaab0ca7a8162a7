"""Game version 6: an update made from public data (the evaluation batches revealed in earlier rounds) is nobody's
new work. A trainer that trains on the revealed batch instead of its own data is found by its centered cosine
with the aggregator's own public-data updates, is worth 0, is left out of the aggregate and is told why; honest
trainers, and every round before version 6, are valued as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from aggregator.carryover import config_from_json, config_to_json
from aggregator.compute import revealed_eval_batches
from aggregator.contribution import ContributionConfig, ContributionError, PublicWorkConfig, compute_contributions
from aggregator.evaldata import EvalDataError, encode_eval_batch
from aggregator.pipeline import PipelineConfig, PipelineError, RoundInputs, Submission, run_round
from aggregator.public_work import public_steps, revealed_samples
from aggregator.rules import AggregationRule, RuleParams, aggregate
from aggregator.same_work import same_work
from aggregator.value_gram import ClipSpec
from flchain.explain import explain
from flchain.ml.data import Dataset
from flchain.ml.params import ParamLayout, module_to_params, pseudo_gradient
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator, local_train
from flchain.report import RoundReport, TrainerScore
from flchain.storage.errors import ContentNotFound

SPEC = ModelSpec("tiny", "mlp", (8,), 4, hidden=(16,))


def _data(seed: int, n: int, name: str) -> Dataset:
    """Four Gaussian clusters in 8 dimensions: every trainer's shard and the evaluation batch alike."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centres = np.random.default_rng(99).normal(0.0, 2.0, (4, 8))
    return Dataset((centres[y] + rng.normal(0.0, 1.0, (n, 8))).astype(np.float32), y.astype(np.int64), name, (8,), 4)


def _batch(values: list[float], labels: list[int]) -> Dataset:
    x = np.array([[v] * 8 for v in values], dtype=np.float32)
    return Dataset(x, np.array(labels, dtype=np.int64), "b", (8,), 4)


def test_revealed_samples_are_distinct_and_come_from_the_newest_batches() -> None:
    assert revealed_samples([], 10) is None
    old, middle, new = _batch([1, 2], [0, 1]), _batch([2, 3, 4], [1, 2, 3]), _batch([4, 5], [3, 0])
    everything = revealed_samples([old, middle, new], 100)
    assert everything is not None
    assert everything.x[:, 0].tolist() == [1, 2, 3, 4, 5]  # repeats kept once, oldest first
    two_batches = revealed_samples([old, middle, new], 4)  # the newest batches holding 4 samples: middle and new
    assert two_batches is not None and two_batches.x[:, 0].tolist() == [2, 3, 4, 5]
    capped = revealed_samples([old, middle, new], 3)
    assert capped is not None and capped.x[:, 0].tolist() == [3, 4, 5]  # the last 3 distinct samples
    relabelled = revealed_samples([_batch([1], [0]), _batch([1], [2])], 10)  # same input, another label
    assert relabelled is not None and len(relabelled) == 2


def test_public_steps_are_gradient_descent_on_the_whole_batch_taken_at_each_checkpoint() -> None:
    params = module_to_params(SPEC.build())
    layout = ParamLayout.of(params)
    base = layout.flatten(params)
    data = _data(1, 60, "revealed")
    config = PublicWorkConfig(checkpoints=(2, 5), lr=0.1)

    steps = public_steps(base, SPEC, layout, data, config)
    again = public_steps(base, SPEC, layout, data, config)

    assert len(steps) == 2 and all(s.dtype == np.float32 and s.shape == base.shape for s in steps)
    assert all(np.array_equal(a, b) for a, b in zip(steps, again, strict=True))  # no seed to choose: reproducible
    straight = local_train(params, SPEC, data, steps=5, batch_size=60, lr=0.1, seed=0).params
    want = layout.flatten(pseudo_gradient(params, straight))
    np.testing.assert_allclose(steps[1], want, rtol=1e-4, atol=1e-6)  # 2 steps, then 3 more: 5 steps
    assert public_steps(base, SPEC, layout, None, config) == ()


def test_the_last_steps_cosines_keep_their_bits_and_public_ones_are_the_largest_centered_cosine() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(9, 50))
    step, public = rng.normal(size=50), [rng.normal(size=50), 2.0 * rows[4] + 0.1 * rng.normal(size=50)]

    alone = same_work(rows, 0.7, gram=True, reference=step)
    both = same_work(rows, 0.7, gram=True, reference=step, public=public)

    assert alone.public_cosines is None and both.groups == alone.groups
    assert both.reference_cosines is not None and alone.reference_cosines is not None
    assert np.array_equal(both.reference_cosines, alone.reference_cosines)
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    center = np.median(units, axis=0)
    directions = units - center
    want = np.stack([directions @ (p / np.linalg.norm(p) - center) / np.linalg.norm(directions, axis=1)
                     / np.linalg.norm(p / np.linalg.norm(p) - center) for p in public])
    want_plain = np.stack([units @ (p / np.linalg.norm(p)) for p in public])
    assert both.public_cosines is not None and both.public_plain_cosines is not None
    np.testing.assert_allclose(both.public_cosines, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(both.public_plain_cosines, want_plain, rtol=1e-9, atol=1e-12)
    assert int(np.argmax(both.public_cosines[1])) == 4 and both.public_cosines[1, 4] > 0.9
    only_public = same_work(rows, 0.7, gram=True, public=public)
    assert only_public.reference_cosines is None and only_public.public_cosines is not None
    np.testing.assert_allclose(only_public.public_cosines, want, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="Gram path"):
        same_work(rows, 0.7, public=public)


def test_the_screened_path_gives_the_same_public_cosines() -> None:
    rng = np.random.default_rng(8)
    rows = rng.normal(size=(300, 40))
    public = [rng.normal(size=40)]
    screened = same_work(rows, 0.7, b"seed", gram=True, public=public)
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    center = np.median(units, axis=0)
    ref = public[0] / np.linalg.norm(public[0]) - center
    want = (units - center) @ ref / np.linalg.norm(units - center, axis=1) / np.linalg.norm(ref)
    assert screened.public_cosines is not None and screened.public_plain_cosines is not None
    np.testing.assert_allclose(screened.public_cosines[0], want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(screened.public_plain_cosines[0], units @ (public[0] / np.linalg.norm(public[0])),
                               rtol=1e-9, atol=1e-12)


def _quadratic(theta: NDArray[np.floating]) -> float:
    return float(np.sum((np.asarray(theta, dtype=np.float64) - np.linspace(-1, 1, 30)) ** 2))


def test_a_row_close_to_a_public_update_plays_no_part_and_version_5_ignores_it() -> None:
    rng = np.random.default_rng(0)
    target = np.linspace(-1, 1, 30)
    honest = [(-(0.3 * target) + rng.normal(0, 0.05, 30)).astype(np.float32) for _ in range(6)]
    public = -(0.3 * target) + rng.normal(0, 0.2, 30)  # the direction the revealed data points to
    copied = (1.2 * public + rng.normal(0, 0.01, 30)).astype(np.float32)
    rows = np.stack([*honest, copied])
    params = RuleParams(clip_version=2)

    def rule(x: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(aggregate(AggregationRule.CENTERED_CLIP, x, weights=w, params=params).vector)

    def contributions(version: int, rows: NDArray[np.float32], with_public: bool = True):  # type: ignore[no-untyped-def]
        base = np.zeros(30)
        return compute_contributions(base, rows, _quadratic, rule, outer_lr=1.0, loss_before=_quadratic(base),
                                     seed=b"s", config=ContributionConfig(game_version=version),
                                     clip=ClipSpec(None, None, 3), public=[public] if with_public else [])

    found = contributions(6, rows)
    without = contributions(6, np.stack(honest))
    assert found.public == (False,) * 6 + (True,) and found.echoes == (False,) * 7
    assert found.values[-1] == 0.0 and found.weights[-1] == 0.0
    np.testing.assert_allclose(found.values[:-1], without.values, rtol=1e-6, atol=1e-9)
    old = contributions(5, rows)
    assert not any(old.public) and old.values[-1] > 0
    no_public = contributions(6, rows, with_public=False)
    np.testing.assert_allclose(no_public.values, old.values, rtol=0, atol=0)  # no public update: version 5's bits


def _submission(index: int, delta: NDArray[np.float32]) -> Submission:
    return Submission(account=f"0x{index + 1:040x}", digest=bytes([index + 1]) * 32, cid=f"cid-{index}",
                      num_samples=100, block_number=10 + index, log_index=0, delta=delta)


def test_through_run_round_a_trainer_that_trains_on_the_revealed_batch_is_not_paid() -> None:
    """Six honest trainers on their own shards; two train on the evaluation batch revealed last round, with their
    own seeds, batch size and step count. The aggregator's public updates come from that same batch."""
    params = module_to_params(SPEC.build())
    layout = ParamLayout.of(params)
    base = layout.flatten(params)
    revealed = _data(7, 40, "evaluation")  # the reused evaluation batch, public since last round
    evaluator = Evaluator(SPEC, revealed)

    def delta(data: Dataset, seed: int, steps: int = 10, batch_size: int = 16) -> NDArray[np.float32]:
        trained = local_train(params, SPEC, data, steps=steps, batch_size=batch_size, lr=0.1, seed=seed).params
        return layout.flatten(pseudo_gradient(params, trained))

    honest = [_submission(i, delta(_data(100 + i, 80, f"shard-{i}"), seed=i)) for i in range(6)]
    gamers = [_submission(6, delta(revealed, seed=51, steps=12)), _submission(7, delta(revealed, 52, 20, 8))]
    config = PipelineConfig()
    inputs = RoundInputs(task_id=1, round_id=2, base=base, submissions=(*honest, *gamers), budget_wei=10**18,
                         public_steps=public_steps(base, SPEC, layout, revealed, config.contribution.public_work))

    def loss_fn(vector: NDArray[np.floating]) -> float:
        return evaluator.evaluate_vector(np.asarray(vector, dtype=np.float32)).loss

    outcome = run_round(inputs, loss_fn, config)
    honest_alone = run_round(replace(inputs, submissions=tuple(honest)), loss_fn, config)

    assert [row.public_work for row in outcome.trainers] == [False] * 6 + [True] * 2
    for row in outcome.trainers[6:]:
        assert row.status == "accepted" and not row.aggregated and row.payout_wei == 0 and row.value_score == 0.0
    assert all(row.payout_wei > 0 and row.aggregated for row in outcome.trainers[:6])
    assert not any(row.public_work for row in honest_alone.trainers)  # honest work alone: nothing taken for public
    paid = run_round(inputs, loss_fn, replace(config, contribution=ContributionConfig(game_version=5)))
    assert not any(row.public_work for row in paid.trainers) and sum(r.payout_wei for r in paid.trainers[6:]) > 0


def test_a_public_step_of_the_wrong_shape_or_not_finite_is_an_input_error() -> None:
    base = np.zeros(4, dtype=np.float32)
    for bad in (np.zeros(3, dtype=np.float32), np.array([0, np.nan, 0, 0], dtype=np.float32)):
        with pytest.raises(PipelineError, match="public-data step"):
            run_round(RoundInputs(task_id=1, round_id=2, base=base, submissions=(), budget_wei=1,
                                  public_steps=(bad,)), lambda v: 0.0, PipelineConfig())


def test_the_config_round_trips_and_older_versions_keep_their_bytes() -> None:
    custom = PipelineConfig(contribution=ContributionConfig(
        public_work=PublicWorkConfig(cosine=0.6, checkpoints=(3, 9), lr=0.05, max_samples=500)))
    doc = config_to_json(custom)
    assert doc["contribution"]["public_work"]["checkpoints"] == [3, 9]
    assert config_from_json(json.loads(json.dumps(doc))) == custom
    v5 = PipelineConfig(contribution=ContributionConfig(game_version=5))
    assert "public_work" not in config_to_json(v5)["contribution"]
    assert config_from_json(config_to_json(v5)) == v5
    bad_fields = ({"cosine": 0.0}, {"plain_cosine": 1.5}, {"lr": -1.0}, {"max_samples": 0}, {"checkpoints": (5, 2)},
                  {"checkpoints": (0,)})
    for bad in bad_fields:
        with pytest.raises(ContributionError):
            PublicWorkConfig(**bad)


def test_the_report_and_the_explanation_say_so() -> None:
    text = explain(status="accepted", reason=None, reason_detail=None, value_score=0.0, loss_reduction=0.1,
                   same_work_as=None, rating_weight=0.5, payout_wei=0, budget_wei=10, public_work=True)
    assert text.startswith("not paid: does the work anyone can do from public data")
    row = TrainerScore(account="0x" + "11" * 20, digest="0x" + "ab" * 32, cid="cid", num_samples=10, block_number=1,
                       log_index=0, status="accepted", rating_mu=25.0, rating_sigma=8.3, final_score=0.0)
    from tests.unit.test_trainer_rewards import ME, minimal_report, payout_tree

    report = minimal_report(1, 2, payout_tree(1, 2, [(ME, 5)]), "", 5).model_copy(update={"trainers": (row,)})
    flagged = report.model_copy(update={"trainers": (row.model_copy(update={"public_work": True}),)})
    assert "public_work" not in json.loads(report.to_bytes())["trainers"][0]
    assert json.loads(flagged.to_bytes())["trainers"][0]["public_work"] is True
    assert RoundReport.from_bytes(flagged.to_bytes()) == flagged


class _Log:
    """The finalizations a `TaskLog` holds: round -> (a stand-in with) its revealed evaluation CID."""

    def __init__(self, cids: dict[int, str]) -> None:
        self.finalizations = {r: type("Fin", (), {"eval_cid": cid})() for r, cid in cids.items()}


class _Storage:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.asked: list[str] = []

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        self.asked.append(cid)
        if cid not in self.blobs:
            raise ContentNotFound(cid)
        return self.blobs[cid]


def test_the_service_and_verify_read_the_newest_revealed_batches_until_they_hold_enough_samples() -> None:
    spec = ModelSpec("tiny", "mlp", (8,), 4, hidden=(4,))
    blobs = {f"cid{r}": encode_eval_batch(_data(r, 30, f"eval-{r}"), 1, r) for r in range(1, 6)}
    log, storage = _Log({r: f"cid{r}" for r in (1, 2, 3, 5)}), _Storage(blobs)  # round 4 expired, never finalized

    read = revealed_eval_batches(log, storage, 5, spec, max_samples=50)  # type: ignore[arg-type]

    assert read == (blobs["cid3"], blobs["cid2"])  # before round 5, newest first, until 60 >= 50 samples
    assert storage.asked == ["cid3", "cid2"]
    assert revealed_eval_batches(log, storage, 1, spec, max_samples=50) == ()  # type: ignore[arg-type]
    missing = _Log({1: "cid1", 2: "gone"})
    with pytest.raises(ContentNotFound):  # public data the round needs: an error, the step is tried again later
        revealed_eval_batches(missing, storage, 3, spec, max_samples=50)  # type: ignore[arg-type]


def test_clean_trainers_among_noisy_label_trainers_are_not_taken_for_public_work() -> None:
    """Clean trainers point where the clean revealed data points, relative to a median the noisy-label trainers
    pull away: their centered cosines with the public updates are high. Their plain cosines are not: the plain bound
    keeps them paid (without it, the centered cosine alone takes a clean trainer for public work)."""
    params = module_to_params(SPEC.build())
    layout = ParamLayout.of(params)
    base = layout.flatten(params)
    revealed = _data(7, 40, "evaluation")
    evaluator = Evaluator(SPEC, revealed)

    def delta(data: Dataset, seed: int) -> NDArray[np.float32]:
        trained = local_train(params, SPEC, data, steps=20, batch_size=16, lr=0.1, seed=seed).params
        return layout.flatten(pseudo_gradient(params, trained))

    def noisy(seed: int) -> Dataset:
        data = _data(seed, 80, f"noisy-{seed}")
        labels = np.where(np.random.default_rng(seed).random(80) < 0.5, (data.y + 1) % 4, data.y)
        return data.with_labels(labels.astype(np.int64))

    shards = [_data(200, 80, "clean-0"), _data(201, 80, "clean-1"), noisy(202), noisy(203)]
    submissions = tuple(_submission(i, delta(shard, seed=i)) for i, shard in enumerate(shards))
    config = PipelineConfig()
    inputs = RoundInputs(task_id=1, round_id=2, base=base, submissions=submissions, budget_wei=10**18,
                         public_steps=public_steps(base, SPEC, layout, revealed, config.contribution.public_work))

    def loss_fn(vector: NDArray[np.floating]) -> float:
        return evaluator.evaluate_vector(np.asarray(vector, dtype=np.float32)).loss

    outcome = run_round(inputs, loss_fn, config)
    centered_only = replace(config, contribution=ContributionConfig(
        public_work=PublicWorkConfig(plain_cosine=1e-9)))
    without_bound = run_round(inputs, loss_fn, centered_only)

    assert not any(row.public_work for row in outcome.trainers)
    assert all(row.aggregated for row in outcome.trainers)
    assert outcome.trainers[0].payout_wei > 0  # the clean pair is one same-work group here: paid once, to the first
    assert any(row.public_work for row in without_bound.trainers[:2])
    assert sum(row.payout_wei for row in without_bound.trainers[:2]) == 0


def test_diverging_gradient_descent_keeps_the_checkpoints_before_and_the_round_is_still_valued() -> None:
    params = module_to_params(SPEC.build())
    layout = ParamLayout.of(params)
    base = layout.flatten(params)
    data = _data(1, 60, "revealed")

    diverged = public_steps(base, SPEC, layout, data, PublicWorkConfig(checkpoints=(1, 50), lr=1e4))
    again = public_steps(base, SPEC, layout, data, PublicWorkConfig(checkpoints=(1, 50), lr=1e4))

    assert len(diverged) < 2 and all(np.all(np.isfinite(step)) for step in diverged)
    assert len(again) == len(diverged) and all(np.array_equal(a, b) for a, b in zip(diverged, again, strict=True))
    rng = np.random.default_rng(0)
    subs = tuple(_submission(i, (0.01 * rng.normal(size=base.shape)).astype(np.float32)) for i in range(4))
    outcome = run_round(RoundInputs(task_id=1, round_id=2, base=base, submissions=subs, budget_wei=10**18,
                                    public_steps=diverged), _quadratic_of(base), PipelineConfig())
    assert len(outcome.trainers) == 4


def _quadratic_of(base: NDArray[np.floating]) -> Callable[[NDArray[np.floating]], float]:
    def loss(theta: NDArray[np.floating]) -> float:
        return float(np.sum((np.asarray(theta, dtype=np.float64) - np.asarray(base, dtype=np.float64) + 0.1) ** 2))
    return loss


def test_a_malformed_revealed_batch_is_an_error_not_a_guess() -> None:
    spec = ModelSpec("tiny", "mlp", (8,), 4, hidden=(4,))
    log, storage = _Log({1: "bad"}), _Storage({"bad": b"not a safetensors file"})
    with pytest.raises(EvalDataError):
        revealed_eval_batches(log, storage, 2, spec, max_samples=50)  # type: ignore[arg-type]
