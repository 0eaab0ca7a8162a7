"""Payouts: floor of the proportional share of the budget, dust stays in the pool, leaves ordered by address."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.payouts import PayoutError, PayoutLeaf, compute_payouts, payout_values, split_budget
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree

A, B, C, D = (f"0x{n:040x}" for n in (0xC0, 0xA0, 0xB0, 0xD0))


def test_equal_scores_split_equally_and_the_dust_stays() -> None:
    assert split_budget([1.0, 1.0, 1.0], 100) == [33, 33, 33]


def test_non_positive_scores_get_nothing() -> None:
    assert split_budget([0.5, 0.0, -1.0, 0.25, math.nan, -math.inf], 1000) == [666, 0, 0, 333, 0, 0]


def test_no_positive_score_pays_nobody() -> None:
    assert split_budget([0.0, -2.0], 10**18) == [0, 0]
    assert compute_payouts([A, B], [0.0, -2.0], 10**18) == []


def test_split_is_exact_for_large_budgets() -> None:
    amounts = split_budget([0.1, 0.2], 3 * 10**24)

    assert amounts == [10**24, 2 * 10**24]  # 0.1 and 0.2 as exact binary fractions still split 1 : 2 here


def test_leaves_hold_positive_amounts_in_address_order() -> None:
    leaves = compute_payouts([A, B, C, D], [3.0, 1.0, 0.0, 4.0], 8_000)

    assert leaves == [
        PayoutLeaf(0, "0x00000000000000000000000000000000000000a0", 1_000),
        PayoutLeaf(1, "0x00000000000000000000000000000000000000C0", 3_000),
        PayoutLeaf(2, "0x00000000000000000000000000000000000000d0", 4_000),
    ]


def test_payout_values_build_a_tree_whose_proofs_verify() -> None:
    leaves = compute_payouts([A, B, D], [3.0, 1.0, 4.0], 8_000)

    values = payout_values(task_id=2, round_id=5, leaves=leaves)
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)

    assert values[0] == (2, 5, 0, leaves[0].account, 1_000)
    for i, value in enumerate(values):
        assert StandardMerkleTree.verify(tree.root, PAYOUT_LEAF_ENCODING, value, tree.get_proof(i))


@pytest.mark.parametrize(
    ("accounts", "scores", "budget"),
    [([A, A], [1.0, 1.0], 10), (["0x1234"], [1.0], 10), ([A], [math.inf], 10), ([A], [1.0], -1), ([A, B], [1.0], 9)],
    ids=["repeated-account", "bad-address", "infinite-score", "negative-budget", "length-mismatch"],
)
def test_bad_inputs_are_rejected(accounts: list[str], scores: list[float], budget: int) -> None:
    with pytest.raises(PayoutError):
        compute_payouts(accounts, scores, budget)


scores_strategy = st.lists(
    st.one_of(st.floats(min_value=-10.0, max_value=1e6, allow_nan=False), st.just(0.0)), min_size=1, max_size=12
)
budgets = st.integers(min_value=0, max_value=10**27)


@given(scores=scores_strategy, budget=budgets)
def test_amounts_are_non_negative_and_never_exceed_the_budget(scores: list[float], budget: int) -> None:
    amounts = split_budget(scores, budget)

    assert all(amount >= 0 for amount in amounts)
    assert sum(amounts) <= budget
    assert all(amount == 0 for amount, score in zip(amounts, scores, strict=True) if score <= 0)
    if any(score > 0 for score in scores):
        assert sum(amounts) > budget - len(scores)  # the dust is less than one wei per trainer


@given(scores=scores_strategy, budget=budgets)
def test_amounts_are_monotone_in_score(scores: list[float], budget: int) -> None:
    amounts = split_budget(scores, budget)

    for i, score_i in enumerate(scores):
        for j, score_j in enumerate(scores):
            if score_i >= score_j:
                assert amounts[i] >= amounts[j]


@given(scores=scores_strategy, budget=budgets)
def test_leaves_are_indexed_in_address_order_with_positive_amounts(scores: list[float], budget: int) -> None:
    accounts = [f"0x{(i * 0x9E3779B1) % 2**160:040x}" for i in range(1, len(scores) + 1)]

    leaves = compute_payouts(accounts, scores, budget)

    assert [leaf.index for leaf in leaves] == list(range(len(leaves)))
    assert [int(leaf.account, 16) for leaf in leaves] == sorted(int(leaf.account, 16) for leaf in leaves)
    assert all(leaf.amount_wei > 0 for leaf in leaves)
    assert sum(leaf.amount_wei for leaf in leaves) == sum(split_budget(scores, budget))
