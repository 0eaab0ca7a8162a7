"""The demo's summary answers "why was I (not) paid" from the score report's fields."""

from __future__ import annotations

from rich.console import Console

from flchain.devnet.demo import DemoResult, render_summary
from flchain.devnet.summary import RoundSummary, TaskSummary, TrainerSummary, _verdict


def test_verdict_names_the_rejection_reason_or_the_missing_gain() -> None:
    assert _verdict("rejected", "norm_outlier", None) == ("rejected", "norm_outlier")
    assert _verdict("accepted", None, -0.02) == ("no gain", "raised the loss")
    assert _verdict("accepted", None, 0.0) == ("no gain", "did not lower the loss")
    assert _verdict("accepted", None, 0.03) == ("paid", "")


def test_summary_table_shows_roles_payouts_and_accuracy_per_round() -> None:
    trainers = {
        "0xA": TrainerSummary(address="0xA", rounds_submitted=2, rounds_paid=2, last_status="paid",
                              earned_wei=3 * 10**18, claimed_wei=3 * 10**18),
        "0xB": TrainerSummary(address="0xB", rounds_submitted=2, last_status="no gain",
                              last_reason="raised the loss"),
    }
    rounds = (RoundSummary(1, 0.10, 0.40, 2.0, 2, 0, 10**18), RoundSummary(2, 0.40, 0.65, 1.5, 2, 0, 2 * 10**18))
    console = Console(width=120, record=True)

    render_summary(DemoResult(TaskSummary(1, rounds, trainers), {"0xA": "honest", "0xB": "sign-flip"}, "http://x"),
                   console)

    text = console.export_text()
    assert "honest" in text and "sign-flip" in text and "no gain: raised the loss" in text
    assert "3.00" in text and "0.650" in text and "2/2" in text
