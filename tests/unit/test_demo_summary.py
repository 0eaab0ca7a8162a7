"""The demo's summary answers "why was I (not) paid" from the score report's fields."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from flchain.devnet.cli import demo_config, services_to_stop
from flchain.devnet.demo import DemoResult, render_summary
from flchain.devnet.summary import RoundSummary, TaskSummary, TrainerSummary, _verdict
from flchain.devnet.workloads import WORKLOADS, WorkloadName


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


def test_demo_rounds_follow_the_workload_unless_windows_are_given(tmp_path: Path) -> None:
    shakespeare, digits = WORKLOADS[WorkloadName.SHAKESPEARE], WORKLOADS[WorkloadName.DIGITS]

    default = demo_config(tmp_path, shakespeare, rounds=2, validators=3, quorum=2)
    given = demo_config(tmp_path, shakespeare, rounds=2, validators=0, quorum=2, commit_window_s=9,
                        reveal_window_s=7)

    # Shakespeare's first round (parsing the plays, loading the transformer, 60 steps) outlasts digits' windows.
    assert (default.commit_window_s, default.reveal_window_s) == (shakespeare.commit_window_s,
                                                                  shakespeare.reveal_window_s)
    assert default.commit_window_s > digits.commit_window_s
    assert default.workload is shakespeare and default.model == "gpt-shakespeare-small" and default.quorum == 2
    assert (given.commit_window_s, given.reveal_window_s, given.quorum) == (9, 7, 0)


def test_a_kept_demo_leaves_the_chain_ipfs_with_its_front_and_the_api_running() -> None:
    names = ["anvil", "ipfs", "ipfs-front", "api", "aggregator", "validator-1", "honest-1", "free-rider"]

    assert services_to_stop(names, keep=True) == ["aggregator", "validator-1", "honest-1", "free-rider"]
    assert services_to_stop(names, keep=False) == names
