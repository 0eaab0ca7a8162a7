"""Dashboard metrics of the language task: perplexity from the validation loss and the round's sampled line."""

from __future__ import annotations

import math

from backend.api.convert import metrics_point, perplexity
from backend.db.models import Round, RoundReport


def _rows(loss_after: float | None, sample: str | None) -> tuple[Round, RoundReport]:
    row = Round(task_id=1, round=2, base_model_digest="0x" + "00" * 32, base_model_cid="b",
                eval_commitment="0x" + "00" * 32, commit_deadline=0, reveal_deadline=0, opened_block=1,
                opened_tx="0x" + "00" * 32, finalized_block=9, payout_total_wei=5)
    report = RoundReport(task_id=1, round=2, aggregation_rule="centered-clip", accepted=3, rejected=1, budget_wei=10,
                         payout_tree_cid="t", val_loss_before=4.5, val_accuracy_before=0.01,
                         val_loss_after=loss_after, val_accuracy_after=0.3, eval_samples=100, sample_text=sample)
    return row, report


def test_metrics_point_carries_perplexity_and_the_sampled_line() -> None:
    row, report = _rows(2.0, "thou art a villain")

    point = metrics_point(row, None, report)

    assert point.val_perplexity_after is not None and math.isclose(point.val_perplexity_after, math.exp(2.0))
    assert point.sample_text == "thou art a villain"


def test_perplexity_is_none_when_the_loss_is_unknown_or_overflows() -> None:
    assert perplexity(None) is None
    assert perplexity(float("nan")) is None
    assert perplexity(800.0) is None
    assert perplexity(0.0) == 1.0
