"""What each accepted update is worth to the round: its Shapley value in the round's coalition game.

The game of new tasks (game version 5). Players are the accepted updates, grouped into same-work groups (below).
Each update is clipped once, to the round's median norm (`value_walk`), and a coalition `S` is worth the relative
loss reduction on the evaluation batch of the base model stepped by its members' clipped updates, weighted:

    theta_S = base - (outer_lr / W) * sum_{i in S} w_i * clip(x_i),
    v(S)    = (loss(base) - loss(theta_S)) / |loss(base)|

So a member adds to every coalition what it carries, bounded by the clip, not a share of the coalition's robust
consensus. The earlier game (versions 1-4, below) stepped `S` by `W_S / W` times the robust rule re-run on `S`: with
centered clipping the direction of any coalition of a few honest updates is their consensus, so any accepted update
that did not turn it added one share of step length along it and was paid about an honest share for it, whatever
it carried. Measured on digits (`flchain bench robustness`, 30 % attackers; the models are the same, only the pay
moves): Gaussian noise 9.0 -> 3.6 % of the payouts, label-flip 5.3 -> 0 %, a lone IPM attacker 2.6 -> 0 %, the lone
omniscient ALIE / Min-Max / Min-Sum 10.0 / 11.3 / 11.3 -> 10.2 / 9.8 / 10.2 %; the fairness benchmark's Spearman
(payout, exact Shapley) 0.948 -> 0.935 and worst share error 0.268 -> 0.257. The round's own aggregate is still the
robust rule's (centered clipping by default).

The game of versions 1-4. A coalition `S` is worth the relative loss reduction on the evaluation batch of the base
model stepped by the robust aggregate of `S`'s updates, with `S`'s share of the step:

    theta_S = base - outer_lr * (W_S / W) * aggregate(rows_S, weights_S),
    v(S)    = (loss(base) - loss(theta_S)) / |loss(base)|

`W_S` is the aggregate weight of `S` and `W` that of all accepted updates, so `v(N)` is the round's actual step
(outer momentum aside) and `v({})` is 0. With a mean aggregate, `theta_S` is the base moved by exactly the part
of the real aggregate that `S` contributed. Near the base the loss is about quadratic, and then a player's
Shapley value is `g . x_i - 1/2 x_i H X` for its contribution `x_i` and the total `X`. The budget of a round is
fixed, so pay is a share of it; whether k accounts earn more than one depends on whether their k updates carry
more than one account's worth of work (see `bench/sybil.py` for what is measured).

Weights. On a task whose `stakePerSample` is 0, numSamples is self-reported and unbonded, so it weighs nothing:
each same-work group weighs 1, shared by its members. Then k accounts on a split shard carry k weights, and each
is worth about a whole account (measured: 1.77x for k = 2, 2.35x for k = 3 on an IID shard). On a task whose
`stakePerSample` is > 0, the chain accepts a reveal only if `numSamples * stakePerSample` is at most the
trainer's stake, which cannot leave while the round can be slashed: every claimed sample is backed by capital
at risk. There each accepted update weighs its revealed numSamples (`group_weights(groups, samples)`), and a
same-work group weighs its largest claim, shared by its members. Such weights are additive under splitting: one
shard of m samples split across k accounts claims m in all, the weight it had as one account, and needs the same
total stake; one shard trained on k accounts is one group and weighs m once. A claim larger than the data behind
it cannot be proved, so a trainer can buy weight with stake (bench/sybil.py's "overclaim" mode measures it);
extra identities add nothing to that.

Same work is paid once. Accounts that submit nearly the same update (the same data trained with different
seeds, or a lightly perturbed copy the filters let through) are one group when the cosine of their centered
directions `u_i - median_j u_j` (`u = x / ||x||`, coordinate-wise median) reaches `same_work_cosine`: honest
updates from one base are nearly orthogonal there (see `filters`), while two runs on the same data stay aligned.
The median, not the mean, is the center, so a minority of opposed updates (a sign flip) cannot shift it and make
the honest updates look alike. Measured on digits (6, 10 and 20 trainers, 20 local steps, first 4 rounds): distinct
honest trainers up to 0.49, one shard trained twice with different seeds 0.82-0.99; hence 0.7. One shard split in
two is -0.00-0.27 under IID and 0.74-0.87 under Dirichlet(0.5): a label-skewed shard split across accounts is
grouped, weighs as one account and is paid once. (`aggregator.same_work` finds the groups: every pair up to 256
updates, a sketch that screens the pairs above, O(n d).)
A group is one player of the game (its members share one account's weight when claims are unbonded), and
its value goes to its earliest member in the round's order (the reveal order): so k accounts on one shard weigh,
and are paid, as one, and an update copied from another (possible only by collusion under commit-reveal, or by
an attacker that sees the round's updates) earns its copier nothing. Splitting the value equally, as before,
paid three copycats of one honest update 3/4 of its value between them (9.1 % of all payouts at 30 % copycats).

Work resent is paid once too: an update that repeats the same trainer's own update accepted in an earlier round
(`resent_rounds`: its replay sketch within `filters.FilterConfig.replay_cosine` or `copy_relative_distance` of
that trainer's fingerprint; the filters reject only replays of another trainer's work) is worth 0, and it is left
out of the aggregate too unless the config says `aggregate_resent` (configs made before that option). Paid at its
marginal value, a stale free-rider that resent its round-1 update every
round took 18.5 % of the payouts at 30 % attackers: early on the old direction still lowers the loss.

Cost: the Shapley estimate evaluates at most `value.budget(n_groups)` coalitions, one forward pass each
(`value.ValueConfig`, 5 per player by default); the permutations are seeded from the round's public data. The
clipped game walks each permutation with a running sum, O(n d) per permutation (`value_walk`). Versions 1-4
(named in the carried-over config, `GAME_VERSION`): re-running the robust rule on each coalition makes a round
O(n^2 d); from version 2 a round of more than `rerun_max_players` groups walks the clipped game; up to that,
versions 3 and 4 take centered clipping's coalitions from the round's Gram matrix (`value_gram`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from aggregator.filters import Fingerprint
from aggregator.same_work import same_work
from aggregator.value import Coalition, ShapleyEstimate, ValueConfig, estimate_shapley
from aggregator.value_gram import ClipSpec, GramClipGame
from aggregator.value_walk import ClippedGame, estimate_walked

LossFn = Callable[[NDArray[np.floating]], float]
AggregateFn = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]
"""`aggregate(rows, weights) -> vector`: the round's robust rule on a subset of updates."""

GAME_VERSION = 6
"""1: the rule re-run on every coalition (rounds of states that name no version); 2: `value_walk` above
`ContributionConfig.rerun_max_players` groups (O(n d) per permutation instead of O(n^2 d)); 3: as 2, and up to
`rerun_max_players` groups centered clipping (version 2) is re-run on every coalition from the round's Gram
matrix (`value_gram`) instead of over the coalition's rows; 4: as 3, with the Gram game's coalitions stepped in
float32, a permutation's at once (`GramClipGame.steps`), and the same-work cosines from a chunked Gram matrix
(`same_work`), both the same up to rounding and 2-3x faster on 10 x 10M parameters
(docs/benchmarks/value_game.md); 5: every round, whatever its size, is valued in the clipped game of `value_walk`
(the module docstring says why); under centered clipping (version 2) the round's aggregate weighs each row `1 / k`,
k the number of rows of its same-work group (`work_weights`), so a group moves the model as one update does, where
its k rows counted k times while it was paid as one player; and a group that repeats the model's last global step
(a row's centered cosine with it reaches `same_work_cosine`, or its plain cosine `ECHO_PLAIN_COSINE`,
`same_work.same_work`) is no player: worth 0, out of the aggregate (`pipeline._last_step`). A free-rider sending
that step, which anyone computes from the two last published models, took 0.8-0.9 of an honest trainer's pay per
round on digits; honest updates' centered cosines with it stayed below 0.34 (digits IID and Dirichlet(0.5),
MNIST-1D); 6: as 5, and a group with a row whose centered and plain cosines with one of the round's public-data
updates (`aggregator.public_work`: the base trained on the evaluation batches revealed in earlier rounds) reach
`public_work.cosine` and `public_work.plain_cosine` is no player either (`Contributions.public`): its update is
work anyone can do from public data. A trainer that trained on the revealed batches instead of its own data took
21.2 % of the payouts at 30 % of the trainers on digits with version 5, whose benchmark rounds reuse one batch (the
test, learned), and 4.4 % with version 6, all of it for round 1, when it trained honestly
(docs/benchmarks/robustness.md). With no public-data update (a task's first round, or no batch revealed yet)
version 6 is version 5."""
ECHO_PLAIN_COSINE = 0.999
"""An update whose plain cosine with the last global step reaches this repeats it whatever the center (the filters'
`replay_cosine`); honest updates measured up to 0.94 (digits)."""
WORST_VALUE = -10.0
"""A coalition whose stepped model has a non-finite loss (or > 11x the base loss) is worth this."""
_SEED_DOMAIN = b"flchain-round-game/1"


class ContributionError(ValueError):
    """Inconsistent inputs: shapes, weights, a non-finite base loss or a bad threshold."""


@dataclass(frozen=True)
class PublicWorkConfig:
    """Game version 6's public-data updates (`aggregator.public_work`): the round's base trained by full-batch
    gradient descent at `lr` on the last `max_samples` distinct samples of the evaluation batches revealed in earlier
    rounds, one update per step count of `checkpoints` (a trainer's recipe, steps times lr, lands near one of them);
    a row whose plain cosine with one of them reaches `plain_cosine` and whose centered cosine with it reaches
    `cosine` is public work: it points where the public update points, and beyond what the round's consensus
    explains. Measured on digits (`scripts/probe_public_work.py`, 30 % score-gamers): trainers training on the
    revealed batch had plain cosines 0.968-0.996 and centered 0.70-0.96 with the nearest public update; honest
    trainers plain at most 0.923. The plain bound is needed: in the fairness benchmark's coalitions of clean and
    noisy-label trainers, the clean ones point where clean public data points, relative to a median the noisy ones
    pull away (centered 0.70-0.75, plain 0.81-0.85), and the centered cosine alone took them for public work."""

    cosine: float = 0.5
    plain_cosine: float = 0.95
    checkpoints: tuple[int, ...] = (5, 10, 20, 50)
    lr: float = 0.05  # the trainers' local lr (`AggregatorSettings.public_work_lr`; the trainer's default)
    max_samples: int = 512

    def __post_init__(self) -> None:
        if not (0 < self.cosine <= 1 and 0 < self.plain_cosine <= 1) or not self.lr > 0 or self.max_samples < 1:
            raise ContributionError(f"public work: cosines must be in (0, 1], lr > 0 and max_samples >= 1, got "
                                    f"{self.cosine}, {self.plain_cosine}, {self.lr}, {self.max_samples}")
        if list(self.checkpoints) != sorted(set(self.checkpoints)) or not all(k >= 1 for k in self.checkpoints):
            raise ContributionError(f"public work checkpoints must be increasing step counts >= 1, got "
                                    f"{self.checkpoints}")


@dataclass(frozen=True)
class ContributionConfig:
    """The Shapley estimator's budget and truncation, and the centered cosine that makes two updates one work."""

    value: ValueConfig = field(default_factory=ValueConfig)
    same_work_cosine: float = 0.7
    game_version: int = GAME_VERSION
    rerun_max_players: int = 32
    public_work: PublicWorkConfig = field(default_factory=PublicWorkConfig)  # game version 6

    def __post_init__(self) -> None:
        if not 0 < self.same_work_cosine <= 1:
            raise ContributionError(f"same_work_cosine must be in (0, 1], got {self.same_work_cosine}")
        if self.game_version not in (1, 2, 3, 4, 5, 6) or self.rerun_max_players < 0:
            raise ContributionError(f"unknown game version {self.game_version} or rerun_max_players < 0")

    def walks(self, players: int) -> bool:
        """Whether a round of `players` groups is valued by the clipped game (`value_walk`): always from version 5;
        versions 2-4 re-run the rule per coalition (or take it from the Gram matrix) up to `rerun_max_players`
        groups and walk the clipped game above."""
        return self.game_version >= 5 or (self.game_version >= 2 and players > self.rerun_max_players)


@dataclass(frozen=True)
class Contributions:
    """Per accepted update: its group (index of the group's first member), its value and its aggregate weight,
    whether its group repeats the model's last global step (`echoes`, game version 5: worth 0, weight 0) and
    whether it is public work, made from public data (`public`, game version 6: worth 0, weight 0)."""

    groups: tuple[int, ...]
    values: NDArray[np.float64]
    weights: NDArray[np.float64]
    estimate: ShapleyEstimate
    echoes: tuple[bool, ...] = ()
    public: tuple[bool, ...] = ()


def group_weights(groups: Sequence[int], samples: Sequence[int] | None = None) -> NDArray[np.float64]:
    """Aggregate weights: each same-work group weighs one account's worth, shared equally by its members. Without
    `samples` (unbonded claims) that is 1; with `samples` (claims bonded by stake) it is the group's largest claim,
    so one shard trained on k accounts weighs as that shard once."""
    if samples is not None and (len(samples) != len(groups) or any(int(m) < 1 for m in samples)):
        raise ContributionError(f"need one positive sample claim per update, got {list(samples)}")
    out = np.empty(len(groups))
    for g in set(groups):
        members = [i for i, gi in enumerate(groups) if gi == g]
        whole = 1.0 if samples is None else float(max(int(samples[i]) for i in members))
        out[members] = whole / len(members)
    return out


def work_weights(groups: Sequence[int]) -> NDArray[np.float64]:
    """Per row, `1 / k` with k the number of rows of its group (`groups[i]`: its group's label): the rows' weights
    inside centered clipping from game version 5, so that one work counts once whoever submitted it."""
    sizes: dict[int, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    return np.array([1.0 / sizes[g] for g in groups])


def resent_rounds(
    sketches: NDArray[np.float64], trainers: Sequence[str], history: Sequence[Fingerprint], *, cosine: float,
    relative_distance: float,
) -> tuple[int | None, ...]:
    """Per row: the latest earlier round whose accepted update of the same trainer this row repeats, else None."""
    if sketches.shape[0] != len(trainers):
        raise ContributionError(f"{sketches.shape[0]} sketches for {len(trainers)} trainers")
    out: list[int | None] = []
    for sketch, trainer in zip(sketches, trainers, strict=True):
        found = None
        for fp in history:
            if fp.trainer.lower() != trainer.lower() or (found is not None and fp.round_id <= found):
                continue
            if _close(sketch, fp.sketch, cosine, relative_distance):
                found = fp.round_id
        out.append(found)
    return tuple(out)


def _close(a: NDArray[np.float64], b: NDArray[np.float64], cosine: float, relative_distance: float) -> bool:
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (math.isfinite(norm_a) and math.isfinite(norm_b)) or max(norm_a, norm_b) == 0.0:
        return False
    if float(np.linalg.norm(a - b)) / max(norm_a, norm_b) <= relative_distance:
        return True
    return norm_a > 0 and norm_b > 0 and float(a @ b) / (norm_a * norm_b) > cosine


def round_seed(task_id: int, round_id: int, digests: Sequence[bytes]) -> bytes:
    """The permutation seed: SHA-256 over a domain tag, task, round and the accepted digests in order."""
    h = hashlib.sha256(_SEED_DOMAIN + task_id.to_bytes(32, "big") + round_id.to_bytes(32, "big"))
    for digest in digests:
        h.update(digest)
    return h.digest()


def _game(
    base: NDArray[np.float64], rows: NDArray[np.float64], weights: NDArray[np.float64], members: list[list[int]],
    loss_fn: LossFn, aggregate_fn: AggregateFn, outer_lr: float, loss_before: float,
) -> Callable[[Coalition], float]:
    scale, total = max(abs(loss_before), 1e-12), float(weights.sum())

    def value(coalition: Coalition) -> float:
        chosen = [i for player in coalition for i in members[player]]
        if not chosen:
            return 0.0
        subset = weights[chosen]
        step = outer_lr * float(subset.sum()) / total * aggregate_fn(rows[chosen], subset)
        loss = float(loss_fn((base - step).astype(np.float32)))
        worth = (loss_before - loss) / scale
        return worth if math.isfinite(worth) and worth > WORST_VALUE else WORST_VALUE

    return value


def compute_contributions(
    base: NDArray[np.float64], rows: NDArray[np.floating], loss_fn: LossFn,
    aggregate_fn: AggregateFn, *, outer_lr: float, loss_before: float, seed: bytes, config: ContributionConfig,
    samples: Sequence[int] | None = None, clip: ClipSpec | None = None, reference: NDArray[np.floating] | None = None,
    public: Sequence[NDArray[np.floating]] = (),
) -> Contributions:
    """Group the accepted updates, estimate each group's Shapley value and credit it to the group's earliest member
    (rows are in the round's order). `samples`: the rows' bonded sample claims (None: unbonded, see
    `group_weights`). `clip`: the round's rule is centered clipping version 2, with these parameters (game versions
    3 and 4 then take its coalitions from the Gram matrix, `value_gram`); None: `aggregate_fn` is re-run. `rows` may
    be float32 (the updates as decoded): the Gram game reads them as they are, the other games get a float64 copy,
    so their values do not depend on the dtype. `reference` (game version 5; ignored before): the model's last
    global step; a group with a row whose centered cosine with it reaches `same_work_cosine` (or whose plain cosine
    reaches `ECHO_PLAIN_COSINE`) is that step's work,
    public since the last round, not the trainer's: it plays no part in the game, is worth 0 and weighs 0.
    `public` (game version 6; ignored before): updates made from public data (`aggregator.public_work`); a group
    with a row whose centered and plain cosines with one of them reach `public_work.cosine` and
    `public_work.plain_cosine` is public work, treated alike."""
    if rows.ndim != 2 or rows.shape[1] != base.shape[0]:
        raise ContributionError(f"rows {rows.shape} must be (n, {base.shape[0]})")
    if not math.isfinite(loss_before):
        raise ContributionError(f"base loss must be finite, got {loss_before}")
    found = same_work(rows, config.same_work_cosine, seed, gram=config.game_version >= 4,
                      reference=reference if config.game_version >= 5 else None,
                      public=public if config.game_version >= 6 else ())
    groups = found.groups
    repeats = np.zeros(rows.shape[0], dtype=bool)
    if found.reference_plain_cosines is not None:
        repeats |= found.reference_plain_cosines >= ECHO_PLAIN_COSINE
    if found.reference_cosines is not None:
        repeats |= found.reference_cosines >= config.same_work_cosine
    echoed = {groups[i] for i in np.flatnonzero(repeats)}
    echoes = tuple(g in echoed for g in groups)
    from_public = set() if found.public_cosines is None or found.public_plain_cosines is None else {
        groups[i] for i in np.flatnonzero(np.any((found.public_cosines >= config.public_work.cosine)
                                                 & (found.public_plain_cosines >= config.public_work.plain_cosine),
                                                 axis=0))} - echoed
    public_work = tuple(g in from_public for g in groups)
    left_out = [echo or made for echo, made in zip(echoes, public_work, strict=True)]
    leaders = sorted(set(groups) - echoed - from_public)
    weights = group_weights(groups, samples)
    weights[list(np.flatnonzero(left_out))] = 0.0
    values = np.zeros(rows.shape[0])
    if not leaders:  # every update repeats the last step or public work: nothing to value
        values.setflags(write=False)
        weights.setflags(write=False)
        return Contributions(groups, values, weights, ShapleyEstimate(np.zeros(0), True, 0, 0, 0.0, 0.0), echoes,
                             public_work)
    playing = [i for i, out in enumerate(left_out) if not out]  # the game's rows: a repeat is not one of them
    position = {row: k for k, row in enumerate(playing)}
    members = [[position[i] for i, g in enumerate(groups) if g == leader] for leader in leaders]
    if len(playing) < rows.shape[0]:
        rows, play_weights = rows[playing], weights[playing]
    else:
        play_weights = weights
    if config.walks(len(leaders)):
        walked = ClippedGame(base, rows, play_weights, members, loss_fn, outer_lr=outer_lr,  # float32 rows as is
                             loss_before=loss_before, worst_value=WORST_VALUE)
        estimate = estimate_walked(walked, seed, config.value)
    elif config.game_version >= 3 and clip is not None:
        # One BLAS thread: the game's matrix products run in a worker thread beside the forward passes (torch's
        # own threads), and a second BLAS thread would take the forward pass's core (10 x 10M: 3.4 s, not 4.5 s).
        with threadpool_limits(limits=1, user_api="blas"), GramClipGame(
                base, rows, play_weights, members, loss_fn, clip=clip, outer_lr=outer_lr, loss_before=loss_before,
                worst_value=WORST_VALUE, single_precision=config.game_version >= 4) as gram_game:
            estimate = estimate_shapley(len(leaders), gram_game, seed, config.value)
    else:
        game = _game(base, np.asarray(rows, dtype=np.float64), play_weights, members, loss_fn, aggregate_fn, outer_lr,
                     loss_before)
        estimate = estimate_shapley(len(leaders), game, seed, config.value)
    for player, group in enumerate(members):
        values[playing[group[0]]] = estimate.values[player]  # paid once, to the group's earliest member
    values.setflags(write=False)
    weights.setflags(write=False)
    return Contributions(groups, values, weights, estimate, echoes, public_work)
