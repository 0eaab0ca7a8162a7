""""Why was I paid this?": one trainer's payout in a round, in plain words, from the terms in the score report.

The report carries every term (`flchain.report.TrainerScore`): the filters' verdict, the value estimate (its
Shapley value in the round's coalition game, as a fraction of the relative loss reduction), the rating weight,
the share of the budget and any slash. `explain` turns them into one sentence; the aggregator stores it in the
report, and the CLI, the API and the dashboard show it. `rank_correlation` is the round's fairness audit
(payouts against the leave-one-out values of the same round).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

TOKEN_DECIMALS = 18

_REJECTED = {
    "missing": "the update could not be fetched from IPFS in time",
    "digest_mismatch": "the update's bytes do not match the digest committed on-chain",
    "undecodable": "the update could not be decoded",
    "wrong_base": "the update was trained on another base model",
    "wrong_shape": "the update does not fit the task's model",
    "non_finite": "the update contains NaN or infinite values",
    "copy_of_earlier": "copy of another trainer's update revealed in an earlier round",
    "duplicate": "duplicate of an update submitted earlier in this round",
    "near_duplicate": "near-duplicate of an update submitted earlier in this round",
    "norm_outlier": "the update's size is far from the round's median",
}


def _tokens(amount_wei: int) -> str:
    return f"{amount_wei / 10**TOKEN_DECIMALS:.4g}"


def explain(
    *,
    status: str,
    reason: str | None,
    reason_detail: str | None,
    value_score: float | None,
    loss_reduction: float | None,
    same_work_as: str | None,
    rating_weight: float | None,
    payout_wei: int,
    budget_wei: int,
    slash_bps: int = 0,
    resends_round: int | None = None,
    budget_fraction: float | None = None,
    repeats_global_step: bool = False,
    public_work: bool = False,
) -> str:
    """One sentence: what the trainer was paid (or why not) and the terms that decided it."""
    slashed = f"; slashed {slash_bps / 100:g} % of the stake" if slash_bps else ""
    if status != "accepted":
        why = _REJECTED.get(reason or "", reason or "rejected")
        detail = f" ({reason_detail})" if reason_detail else ""
        return f"not paid: {why}{detail}{slashed}"
    share = None
    if value_score is not None and loss_reduction is not None and loss_reduction > 0:
        share = value_score / loss_reduction
    if repeats_global_step:
        return ("not paid: repeats the global model's last step, which anyone can compute from the published "
                f"models; it is not new work{slashed}")
    if public_work:
        return ("not paid: does the work anyone can do from public data (training on the evaluation batches revealed "
                f"in earlier rounds); it is not new work{slashed}")
    if same_work_as:
        return f"not paid: does the same work as {same_work_as}, revealed earlier; the same work is paid once{slashed}"
    if resends_round is not None:
        return f"not paid: resends your own update of round {resends_round}; the same work is paid once{slashed}"
    if reason_detail:  # the one accepted update with a detail: the norm filter scaled it down (aggregator.filters)
        return f"not paid: over the round's norm bound ({reason_detail}){slashed}"
    if value_score is None or value_score < 0:
        amount = "" if share is None else f" (your update's value: {share:.1%} of this round's loss reduction)"
        return f"not paid: made the model worse{amount}{slashed}"
    if payout_wei == 0:
        return f"not paid: no measurable improvement of this round's evaluation loss{slashed}"
    parts = [f"paid {_tokens(payout_wei)}"]
    if share is not None:
        parts.append(f"your update accounted for {share:.1%} of this round's loss reduction")
    if rating_weight is not None:
        parts.append(f"rating weight {rating_weight:.2f} (your record of rounds accepted; lower for a new account)")
    if budget_wei > 0:
        parts.append(f"{payout_wei / budget_wei:.1%} of the round's budget")
    if budget_fraction is not None and budget_fraction < 1:
        parts.append(f"this round paid {budget_fraction:.0%} of its budget: its loss reduction against the task's "
                     "best round so far")
    return ": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:]) + slashed


def _ranks(values: Sequence[float]) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(len(array), dtype=np.float64)
    for value in np.unique(array):  # ties share their mean rank
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho of two equally long sequences; None with fewer than 3 pairs or a constant side."""
    if len(a) != len(b):
        raise ValueError(f"sequences of {len(a)} and {len(b)} values cannot be correlated")
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])
