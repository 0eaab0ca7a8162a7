"""The round computation: already-fetched, already-verified submissions in, a frozen `RoundOutcome` out.

One function, `run_round`, strings the pure round math together: fast filters (`filters.filter_round`) ->
LossScore on the evaluation batch (`scoring`, kept as a diagnostic) -> each update's Shapley value in the round's
coalition game (`contribution`) -> OpenSkill ratings and the final score (`ratings`) -> payouts within the round
budget (`payouts`) -> robust aggregation (`rules.aggregate`) and the outer step (`outer.outer_step`). The service,
`flchain verify round` and the benchmark harness all call it, so a round computed anywhere is the same round.

No I/O: the forward passes are the caller's `loss_fn(flat_params) -> float` (the ml `Evaluator` on the round's
evaluation batch in the service, a tiny quadratic in unit tests). Deterministic: the same inputs give identical
outputs (numpy, and the value estimate's permutations are seeded from the round's public data).

Who is aggregated: every update the filters accept (one the norm filter scaled down only if its LossScore is positive;
not one that resends the same trainer's own earlier accepted update, unless `aggregate_resent`, as in configs written
before that option: a stale free-rider's old direction, aggregated every round, cost MNIST-1D 8 % of the accuracy its
honest trainers reach alone at 30 % attackers), by the robust rule (centered clipping by default bounds what any one
update can move the aggregate; the claim weights reach only FedAvg, and from game version 5 centered clipping counts a
same-work group's k rows 1 / k each, `contribution.work_weights`), and `contribution.group_weights` weigh the coalitions
of the value game: without a sample bond (`RoundInputs.stake_per_sample == 0`) numSamples weighs nothing, each same-work
group weighs 1; with one, a group weighs its largest revealed numSamples, claims the chain checked against stakes. Who
is paid: in proportion to `max(0, value) * w(rating)`, the value being the update's Shapley value in "loss reduction of
the model stepped by a coalition's updates" (Gauntlet's order, Incentivizing Permissionless Distributed Learning of
LLMs, 2025, with its per-update LossScore replaced by the marginal value in the coalition game: from game version 5 the
coalition's clipped updates, before it the robust aggregate re-run on the coalition, `contribution`); an update that
repeats the model's last global step (`_last_step`) is worth 0 and not aggregated, and so is one close to an update
anyone can make from public data (`RoundInputs.public_steps`, game version 6). A harmful or useless update earns 0;
the round's budget is the part of the task's reward per round its value is of the task's best round so far
(`round_budget` "by_value"; "fixed": all of it). Scores decide pay, not membership (`aggregate_positive_only=True` is
kept as an option: it froze the model whenever no single update improved the loss alone). Who is slashed: a rejection
whose reason proves misbehaviour (`slash_reasons`: digest mismatch, copying, non-finite values, malformed (undecodable,
over the cap, wrong shape) by default), with the reason code of `filters.SLASH_CODES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType

import numpy as np
from eth_utils.address import to_checksum_address
from numpy.typing import NDArray

from aggregator.collusion import colluded_submissions
from aggregator.contribution import Contributions, compute_contributions, resent_rounds, round_seed, work_weights
from aggregator.dp_step import dp_aggregate
from aggregator.filters import (
    SLASH_CODES,
    FilterVerdict,
    Fingerprint,
    RoundFilterResult,
    filter_round,
)
from aggregator.outcome import AggregationState, RoundOutcome, SlashOrder, TrainerOutcome
from aggregator.outer import outer_step
from aggregator.payouts import PayoutLeaf, compute_payouts
from aggregator.ratings import Rating, RatingConfig, final_scores, rating_weight, update_ratings
from aggregator.round_budget import round_budget_fraction
from aggregator.round_inputs import PipelineConfig, PipelineError, RoundInputs, Submission, check_inputs
from aggregator.rules import AggregationRule, CenteredClipState, aggregate
from aggregator.rules.common import Vector
from aggregator.scoring import compute_loss_scores, compute_marginal_scores
from aggregator.update_matrix import UpdateRows
from aggregator.value_gram import ClipSpec

__all__ = [
    "AggregationState", "LossFn", "PipelineConfig", "PipelineError", "RoundInputs", "RoundOutcome", "SlashOrder",
    "Submission", "TrainerOutcome", "round_budget_fraction", "run_round",
]

LossFn = Callable[[NDArray[np.floating]], float]
"""Mean loss on the round's evaluation batch of the model with the given flat parameter vector."""

@dataclass(frozen=True)
class _Scores:
    """Per-submission arrays (NaN where not applicable), indexed like the ordered submissions."""

    loss_before: float | None
    losses_after: NDArray[np.float64]
    loss_scores: NDArray[np.float64]
    loo_scores: NDArray[np.float64] | None
    values: NDArray[np.float64]
    contributions: Contributions | None
    weights: NDArray[np.float64]
    resent: Mapping[int, int] = field(default_factory=dict)  # index -> the earlier round its update repeats
    colluded: frozenset[int] = frozenset()  # accepted indices another account resubmitted this round (collusion)
    scaled: Mapping[int, float] = field(default_factory=dict)  # accepted index -> the norm filter's scale (unpaid)
    echoes: frozenset[int] = frozenset()  # accepted indices repeating the model's last global step (game version 5)
    public: frozenset[int] = frozenset()  # accepted indices of public work, made from public data (game version 6)


def _filter(
    ordered: Sequence[Submission], history: Sequence[Fingerprint], config: PipelineConfig
) -> tuple[list[FilterVerdict], NDArray[np.float64], RoundFilterResult | None, list[int], UpdateRows | None]:
    """Verdicts and norms for every submission; the filter result over the decoded ones, their indices and their
    update matrix."""
    verdicts = [FilterVerdict(s.failure, s.detail) if s.failure is not None else FilterVerdict() for s in ordered]
    norms = np.full(len(ordered), np.nan)
    decoded = [i for i, s in enumerate(ordered) if s.delta is not None]
    if not decoded:
        return verdicts, norms, None, decoded, None
    stacked = UpdateRows(ordered, decoded)
    rows = stacked(decoded)
    result = filter_round(rows, [ordered[i].meta() for i in decoded], history, config.filters)
    for k, i in enumerate(decoded):
        verdicts[i] = result.verdicts[k]
        norms[i] = result.norms[k]
    return verdicts, norms, result, decoded, stacked


def _scaled(ordered: Sequence[Submission], filtered: RoundFilterResult | None, decoded: Sequence[int]
            ) -> tuple[list[Submission], dict[int, float]]:
    """The submissions with each update the norm filter scales (`FilterConfig.norm_clip`) replaced by its scaled
    copy, which is what the round scores and aggregates from then on (it is not paid: `_score`), and index -> factor."""
    scales = {decoded[k]: scale for k, scale in ({} if filtered is None else filtered.scales).items()}
    out = list(ordered)
    for i, scale in scales.items():
        out[i] = replace(ordered[i], delta=(np.asarray(ordered[i].delta, dtype=np.float64) * scale).astype(np.float32))
    return out, scales


def _score(
    base: NDArray[np.float64], ordered: Sequence[Submission], accepted: Sequence[int], inputs: RoundInputs,
    config: PipelineConfig, loss_fn: LossFn, filtered: RoundFilterResult | None, scaled: Mapping[int, float],
    stacked: UpdateRows | None,
) -> _Scores:
    n = len(ordered)
    after, scores, values, weights = (np.full(n, np.nan) for _ in range(4))
    if not accepted or stacked is None:
        return _Scores(None, after, scores, None, values, None, weights)
    rows = stacked(accepted)
    measured = compute_loss_scores(base, rows, loss_fn, config.outer.lr, n_aggregated=len(accepted))
    after[list(accepted)] = measured.losses_after
    scores[list(accepted)] = measured.scores
    aggregate_fn = partial(_aggregate_weighted, config=config, state=inputs.state.clip)
    contributions = compute_contributions(
        base, rows, loss_fn, aggregate_fn, outer_lr=config.outer.lr,
        loss_before=measured.loss_before, config=config.contribution,
        samples=[ordered[i].num_samples for i in accepted] if inputs.stake_per_sample > 0 else None,
        seed=round_seed(inputs.task_id, inputs.round_id, [ordered[i].digest for i in accepted]),
        clip=_clip_spec(config, inputs.state.clip), reference=_last_step(inputs.state, config),
        public=inputs.public_steps,
    )
    values[list(accepted)] = contributions.values
    weights[list(accepted)] = contributions.weights
    echoes = frozenset(i for i, echo in zip(accepted, contributions.echoes, strict=False) if echo)
    public = frozenset(i for i, made in zip(accepted, contributions.public, strict=False) if made)
    resent = _resent(ordered, accepted, inputs.history, config, filtered)
    colluded = colluded_submissions([s.delta is not None for s in ordered], [s.digest for s in ordered], filtered)
    values[[*resent, *colluded, *scaled]] = 0.0  # resent work is paid once, collusion and oversized updates not at all
    loo = None
    if config.compute_loo:
        marginal = compute_marginal_scores(
            base, np.asarray(rows, dtype=np.float64), loss_fn, aggregate_fn, config.outer.lr, measured.loss_before,
        )
        loo = np.full(n, np.nan)
        loo[list(accepted)] = marginal.scores
    return _Scores(measured.loss_before, after, scores, loo, values, contributions, weights, resent, colluded, scaled,
                   echoes, public)


def _resent(
    ordered: Sequence[Submission], accepted: Sequence[int], history: Sequence[Fingerprint], config: PipelineConfig,
    filtered: RoundFilterResult | None,
) -> dict[int, int]:
    """Accepted submission index -> the earlier round of the same trainer's accepted update it repeats."""
    if filtered is None:
        return {}
    position = {i: k for k, i in enumerate(i for i, s in enumerate(ordered) if s.delta is not None)}
    found = resent_rounds(
        filtered.sketches[[position[i] for i in accepted]], [ordered[i].account for i in accepted], history,
        cosine=config.filters.replay_cosine, relative_distance=config.filters.copy_relative_distance,
    )
    return {i: r for i, r in zip(accepted, found, strict=True) if r is not None}


def _last_step(state: AggregationState, config: PipelineConfig) -> NDArray[np.float64] | None:
    """The direction of the model's last global step (`theta_before - theta_after`, up to the outer lr), from the
    carried state: the last aggregate (centered clipping's center, every rule's result) and the outer momentum
    buffer, as `outer.outer_step` took the step. None in a task's first round, under central DP (whose aggregate
    the state does not keep) and before game version 5. Anyone can compute it from the two last published models,
    so an update repeating it is nobody's new work (`contribution.compute_contributions`)."""
    last = state.clip.center
    if last is None or config.dp is not None or config.contribution.game_version < 5:
        return None
    aggregate = np.asarray(last, dtype=np.float64)
    buffer = state.outer.momentum_buffer
    if config.outer.momentum == 0.0 or buffer is None:
        return aggregate
    if config.outer.nesterov:
        return aggregate + config.outer.momentum * np.asarray(buffer, dtype=np.float64)
    return np.asarray(buffer, dtype=np.float64)


def _clip_spec(config: PipelineConfig, state: CenteredClipState) -> ClipSpec | None:
    """The round's centered clipping for the Gram game (`value_gram`), `None` when the rule is another one or
    centered clipping version 1 (whose bits the re-run game keeps)."""
    params = config.rule_params
    if AggregationRule(config.rule) is not AggregationRule.CENTERED_CLIP or params.clip_version != 2:
        return None
    center = None if state.center is None else np.asarray(state.center, dtype=np.float64)
    return ClipSpec(center=center, tau=params.clip_tau, iterations=params.clip_iterations)


def _aggregate_weighted(
    rows: NDArray[np.float64], weights: NDArray[np.float64] | None = None, *, config: PipelineConfig,
    state: CenteredClipState,
) -> Vector:
    return aggregate(config.rule, rows, weights=weights, state=state, params=config.rule_params).vector


def _rate(
    ordered: Sequence[Submission], accepted: Sequence[int], scores: _Scores, inputs: RoundInputs, config: PipelineConfig
) -> dict[str, Rating]:
    """Every submitter plays the round's match, a rejected one last (-inf); good: accepted, not resent, colluding or
    scaled down."""
    round_scores = {s.account: -math.inf for s in ordered}
    round_scores.update({ordered[i].account: float(scores.values[i]) for i in accepted})
    good = {ordered[i].account for i in accepted if i not in scores.resent and i not in scores.colluded
            and i not in scores.scaled and i not in scores.echoes and i not in scores.public}
    return update_ratings(inputs.ratings, round_scores, config.ratings, good)


def _clip_weights(accepted: Sequence[int], chosen: Sequence[int], scores: _Scores, config: PipelineConfig
                  ) -> NDArray[np.float64] | None:
    """The chosen rows' weights inside centered clipping (`contribution.work_weights` over the chosen rows: a
    same-work group's k chosen rows count as one), from game version 5 with centered clipping version 2; None
    otherwise or when every group has one chosen row."""
    params = config.rule_params
    if (scores.contributions is None or config.contribution.game_version < 5 or config.dp is not None
            or AggregationRule(config.rule) is not AggregationRule.CENTERED_CLIP or params.clip_version != 2):
        return None
    group_of = dict(zip(accepted, scores.contributions.groups, strict=True))
    weights = work_weights([group_of[i] for i in chosen])
    return None if (weights == 1.0).all() else weights


def _step_model(
    base: NDArray[np.float64], ordered: Sequence[Submission], chosen: Sequence[int], group_weights: NDArray[np.float64],
    inputs: RoundInputs, config: PipelineConfig, stacked: UpdateRows | None,
    clip_weights: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float32], AggregationState]:
    """Robust aggregation (DP-FedAvg with `config.dp`) of the chosen updates, weighted as in the value game
    (`contribution.group_weights` for FedAvg, `clip_weights` for centered clipping), and the outer step; none: no
    change."""
    state = inputs.state
    if not chosen or stacked is None:
        return base.astype(np.float32), state
    rows = stacked(chosen)  # float32 as decoded: no float64 copy
    weights = np.array([float(group_weights[i]) for i in chosen])
    use_weights = weights if weights.sum() > 0 else None
    result = (aggregate(config.rule, rows, weights=use_weights, state=state.clip, params=config.rule_params,
                        clip_weights=clip_weights)
              if config.dp is None else dp_aggregate(rows, [ordered[i].content_key for i in chosen], config.dp, inputs))
    stepped = outer_step(base, result.vector, state.outer, config.outer)
    (new_params := np.asarray(stepped.params, dtype=np.float32).copy()).setflags(write=False)
    return new_params, AggregationState(clip=result.state, outer=stepped.state)


def _slashes(
    ordered: Sequence[Submission], verdicts: Sequence[FilterVerdict], config: PipelineConfig
) -> dict[int, SlashOrder]:
    if config.slash_bps == 0:
        return {}
    out = {}
    for i, verdict in enumerate(verdicts):
        if verdict.reason is not None and verdict.reason in config.slash_reasons:
            code = SLASH_CODES[verdict.reason]
            out[i] = SlashOrder(ordered[i].account, config.slash_bps, code, verdict.reason)
    return out


def _fingerprints(
    inputs: RoundInputs, result: RoundFilterResult | None, ordered: Sequence[Submission], decoded: Sequence[int],
    config: PipelineConfig,
) -> tuple[Fingerprint, ...]:
    fresh = () if result is None else result.fingerprints(inputs.round_id, [ordered[i].meta() for i in decoded])
    oldest = inputs.round_id - config.fingerprint_rounds + 1
    return tuple(fp for fp in (*inputs.history, *fresh) if fp.round_id >= oldest)


def _optional(values: NDArray[np.float64] | None, i: int) -> float | None:
    if values is None or np.isnan(values[i]):
        return None
    return float(values[i])


def _rows(
    ordered: Sequence[Submission],
    verdicts: Sequence[FilterVerdict],
    norms: NDArray[np.float64],
    scores: _Scores,
    chosen: set[int],
    ratings: Mapping[str, Rating],
    finals: NDArray[np.float64],
    payouts: Mapping[str, PayoutLeaf],
    slashes: Mapping[int, SlashOrder],
    rating_config: RatingConfig,
) -> tuple[TrainerOutcome, ...]:
    rows = []
    leader = _group_leaders(ordered, scores)
    for i, (s, verdict) in enumerate(zip(ordered, verdicts, strict=True)):
        leaf, slash = payouts.get(s.account), slashes.get(i)
        rows.append(
            TrainerOutcome(
                account=s.account, digest=s.digest, cid=s.cid, num_samples=s.num_samples,
                block_number=s.block_number, log_index=s.log_index,
                status="accepted" if verdict.accepted else "rejected", reason=verdict.reason, detail=verdict.detail,
                update_norm=_optional(norms, i),
                loss_before=scores.loss_before if verdict.accepted else None,
                loss_after=_optional(scores.losses_after, i), loss_score=_optional(scores.loss_scores, i),
                loo_score=_optional(scores.loo_scores, i), value_score=_optional(scores.values, i),
                same_work_as=leader.get(i), resends_round=scores.resent.get(i), aggregated=i in chosen,
                rating=ratings[s.account],
                rating_weight=rating_weight(ratings[s.account], rating_config), final_score=float(finals[i]),
                payout_wei=0 if leaf is None else leaf.amount_wei, payout_index=None if leaf is None else leaf.index,
                slash_bps=0 if slash is None else slash.bps, slash_reason=None if slash is None else slash.reason_code,
                scaled_by=scores.scaled.get(i), repeats_global_step=i in scores.echoes,
                public_work=i in scores.public,
            )
        )
    return tuple(rows)


def _group_leaders(ordered: Sequence[Submission], scores: _Scores) -> dict[int, str]:
    """Submission index -> account of the earliest member of its same-work group, for members after the first."""
    if scores.contributions is None:
        return {}
    accepted = [i for i in range(len(ordered)) if not np.isnan(scores.weights[i])]
    groups = scores.contributions.groups
    return {i: ordered[accepted[groups[k]]].account for k, i in enumerate(accepted) if groups[k] != k}


def _round_budget(inputs: RoundInputs, config: PipelineConfig, scores: _Scores, finals: NDArray[np.float64]
                  ) -> tuple[int, float | None, float | None]:
    """The round's budget in wei, the fraction of `inputs.budget_wei` it is ("by_value"; None when fixed) and the
    best round value to carry on (None when fixed)."""
    if config.round_budget == "fixed":
        return inputs.budget_wei, None, inputs.state.best_round_value
    paid = finals > 0  # a paid update has a positive, finite value
    value = 0.0 if scores.loss_before is None else abs(scores.loss_before) * float(np.sum(scores.values[paid]))
    fraction, best = round_budget_fraction(value, inputs.state.best_round_value)
    return math.floor(inputs.budget_wei * fraction), float(fraction), best


def run_round(inputs: RoundInputs, loss_fn: LossFn, config: PipelineConfig | None = None) -> RoundOutcome:
    """Filter, score, rate, pay, aggregate and step one round (see the module docstring)."""
    config = PipelineConfig() if config is None else config
    base = check_inputs(inputs)
    ordered = sorted(
        (replace(s, account=to_checksum_address(s.account)) for s in inputs.submissions),
        key=lambda s: (s.order_key, s.account.lower()),
    )
    verdicts, norms, filtered, decoded, stacked = _filter(ordered, inputs.history, config)
    ordered, scaled = _scaled(ordered, filtered, decoded)
    if stacked is not None:
        stacked.rescale(ordered, scaled)
    accepted = [i for i, v in enumerate(verdicts) if v.accepted]
    scores = _score(base, ordered, accepted, inputs, config, loss_fn, filtered, scaled, stacked)
    ratings = _rate(ordered, accepted, scores, inputs, config)
    gates = np.array([v.accepted for v in verdicts], dtype=bool)
    finals = final_scores(gates, scores.values, [ratings[s.account] for s in ordered], config.ratings)
    budget_wei, fraction, best = _round_budget(inputs, config, scores, finals)
    leaves = compute_payouts([s.account for s in ordered], finals, budget_wei) if ordered else []
    chosen = [i for i in accepted if ((not config.aggregate_positive_only and i not in scaled)
              or scores.loss_scores[i] > 0)  # a scaled-down update goes in only if it lowers the loss on its own
              and (config.aggregate_resent or i not in scores.resent) and i not in scores.echoes
              and i not in scores.public]
    new_params, state = _step_model(base, ordered, chosen, scores.weights, inputs, config, stacked,
                                    _clip_weights(accepted, chosen, scores, config))
    state = replace(state, best_round_value=best)
    slashes = _slashes(ordered, verdicts, config)
    by_account = {leaf.account: leaf for leaf in leaves}
    trainers = _rows(ordered, verdicts, norms, scores, set(chosen), ratings, finals, by_account, slashes,
                     config.ratings)
    estimate = None if scores.contributions is None else scores.contributions.estimate
    return RoundOutcome(
        task_id=inputs.task_id,
        round_id=inputs.round_id,
        trainers=trainers,
        loss_before=scores.loss_before,
        new_params=new_params,
        state=state,
        ratings=MappingProxyType(dict(sorted(ratings.items()))),
        fingerprints=_fingerprints(inputs, filtered, ordered, decoded, config),
        payouts=tuple(leaves),
        slashes=tuple(slashes[i] for i in sorted(slashes)),
        aggregated_count=len(chosen),
        value_exact=estimate is not None and estimate.exact,
        value_evaluations=0 if estimate is None else estimate.evaluations,
        value_permutations=0 if estimate is None else estimate.permutations,
        value_grand=None if estimate is None else estimate.grand_value,
        budget_fraction=fraction,
    )

