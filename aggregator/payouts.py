"""Payouts: the round budget split in proportion to positive final scores, as Merkle leaves.

Proof-of-contribution reward allocation (Proof-of-Contribution-Based Design for Collaborative Machine Learning on
Blockchain; Gauntlet pays in proportion to its final scores): trainer `i` gets

    amount_i = floor(budget_wei * s_i / sum_j s_j)     over the s_j > 0

computed exactly in rational arithmetic (every float is a dyadic rational), so `sum(amount) <= budget_wei`
always, the rounding dust (< one wei per trainer) stays in the pool, equal scores get equal amounts, and a
higher score never gets less. Non-positive, NaN and -inf scores get nothing. Leaves with a zero amount are left
out; the rest are ordered by account address (as a 160-bit number) and `index` is the position in that list,
which is the leaf's index in the Merkle values and its claim bitmap bit (docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from eth_utils.address import is_address, to_checksum_address

from aggregator.rules.common import Vector


class PayoutError(ValueError):
    """Raised on a bad budget, a bad or repeated account, a +inf score or mismatched lengths."""


@dataclass(frozen=True)
class PayoutLeaf:
    """One claimable payout: leaf index, checksummed account, amount in wei."""

    index: int
    account: str
    amount_wei: int


def _positive_fractions(scores: Sequence[float]) -> list[Fraction]:
    out = []
    for score in scores:
        if score == math.inf:
            raise PayoutError("a score of +inf cannot be paid on")
        out.append(Fraction(score) if math.isfinite(score) and score > 0 else Fraction(0))
    return out


def split_budget(scores: Vector | Sequence[float], budget_wei: int) -> list[int]:
    """Integer amounts in wei, floor of the proportional share of the positive scores (all 0 if none)."""
    if budget_wei < 0:
        raise PayoutError(f"budget must be non-negative, got {budget_wei}")
    shares = _positive_fractions([float(score) for score in np.asarray(scores, dtype=np.float64).ravel()])
    total = sum(shares, Fraction(0))
    if total == 0:
        return [0 for _ in shares]
    return [math.floor(budget_wei * share / total) for share in shares]


def compute_payouts(accounts: Sequence[str], scores: Vector | Sequence[float], budget_wei: int) -> list[PayoutLeaf]:
    """The round's payout leaves: positive amounts only, ordered by account address, indexed 0..m-1."""
    amounts = split_budget(scores, budget_wei)
    if len(amounts) != len(accounts):
        raise PayoutError(f"{len(accounts)} accounts but {len(amounts)} scores")
    if not all(is_address(account) for account in accounts):
        raise PayoutError("every account must be a 20-byte hex address")
    checksummed = [to_checksum_address(account) for account in accounts]
    if len(set(checksummed)) != len(checksummed):
        raise PayoutError("accounts must be unique")
    paid = sorted(
        ((account, amount) for account, amount in zip(checksummed, amounts, strict=True) if amount > 0),
        key=lambda pair: int(pair[0], 16),
    )
    return [PayoutLeaf(index=i, account=account, amount_wei=amount) for i, (account, amount) in enumerate(paid)]


def payout_values(task_id: int, round_id: int, leaves: Sequence[PayoutLeaf]) -> list[tuple[int, int, int, str, int]]:
    """Merkle tree values `(taskId, round, index, account, amount)` for `PAYOUT_LEAF_ENCODING`."""
    return [(task_id, round_id, leaf.index, leaf.account, leaf.amount_wei) for leaf in leaves]
