"""The plain-words explanation of a payout and the round's fairness audit."""

from __future__ import annotations

import pytest

from flchain.explain import explain, rank_correlation

TOKEN = 10**18


def _accepted(**overrides: object) -> str:
    fields: dict[str, object] = dict(status="accepted", reason=None, reason_detail=None, value_score=0.02,
                                     loss_reduction=0.25, same_work_as=None, rating_weight=0.5,
                                     payout_wei=12_300_000_000_000_000_000, budget_wei=100 * TOKEN)
    fields.update(overrides)
    return explain(**fields)  # type: ignore[arg-type]


def test_a_paid_trainer_reads_its_amount_its_share_of_the_loss_reduction_and_of_the_budget() -> None:
    text = _accepted()

    assert text.startswith("paid 12.3: your update accounted for 8.0% of this round's loss reduction")
    assert "rating weight 0.50" in text and "12.3% of the round's budget" in text


def test_a_harmful_update_reads_made_the_model_worse() -> None:
    assert _accepted(value_score=-0.05, payout_wei=0).startswith("not paid: made the model worse (your update's "
                                                                 "value: -20.0% of this round's loss reduction)")


def test_a_duplicate_reads_whose_copy_it_is_and_the_slash() -> None:
    text = explain(status="rejected", reason="duplicate", reason_detail="same digest as 0xAbC (block 12)",
                   value_score=None, loss_reduction=0.2, same_work_as=None, rating_weight=None, payout_wei=0,
                   budget_wei=TOKEN, slash_bps=1000)

    assert text == ("not paid: duplicate of an update submitted earlier in this round (same digest as 0xAbC "
                    "(block 12)); slashed 10 % of the stake")


def test_same_work_and_resent_work_read_not_paid_and_name_the_original() -> None:
    assert _accepted(same_work_as="0xBeef", value_score=0.0, payout_wei=0) == (
        "not paid: does the same work as 0xBeef, revealed earlier; the same work is paid once")
    assert _accepted(resends_round=3, value_score=0.0, payout_wei=0) == (
        "not paid: resends your own update of round 3; the same work is paid once")


def test_rank_correlation_by_hand() -> None:
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([0, 0, 5], [1, 2, 3]) == pytest.approx(0.8660254)  # ties share rank 0.5
    assert rank_correlation([1, 2], [1, 2]) is None and rank_correlation([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError, match="cannot be correlated"):
        rank_correlation([1, 2, 3], [1, 2])


def test_a_round_that_paid_part_of_its_budget_says_why() -> None:
    assert "this round paid" not in _accepted(budget_fraction=1.0)
    assert "this round paid 27% of its budget: its loss reduction against the task's best round so far" in _accepted(
        budget_fraction=0.27)
