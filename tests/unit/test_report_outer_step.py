"""The score report names the outer step it made: Nesterov momentum is recorded, and a report without it keeps the
bytes reports had before the field existed."""

from __future__ import annotations

import json

import numpy as np

from aggregator.compute import aggregation_info
from aggregator.outcome import AggregationState, RoundOutcome
from aggregator.outer import OuterConfig
from aggregator.pipeline import PipelineConfig
from flchain.report import RoundReport
from tests.unit.test_trainer_rewards import ME, minimal_report, payout_tree


def _report(nesterov: bool) -> RoundReport:
    report = minimal_report(1, 2, payout_tree(1, 2, [(ME, 5)]), "", 5)
    aggregation = report.aggregation.model_copy(update={"outer_lr": 0.7, "outer_momentum": 0.9,
                                                        "outer_nesterov": nesterov})
    return report.model_copy(update={"aggregation": aggregation})


def test_nesterov_momentum_is_in_the_reports_bytes_and_reads_back() -> None:
    report = _report(nesterov=True)

    doc = json.loads(report.to_bytes())

    assert doc["aggregation"]["outer_nesterov"] is True
    assert RoundReport.from_bytes(report.to_bytes()) == report


def test_a_report_without_nesterov_has_the_bytes_of_a_report_made_before_the_field() -> None:
    report = _report(nesterov=False)

    doc = json.loads(report.to_bytes())

    assert "outer_nesterov" not in doc["aggregation"]
    assert set(doc["aggregation"]) == {"rule", "params", "outer_lr", "outer_momentum", "accepted", "rejected"}
    assert RoundReport.from_bytes(report.to_bytes()) == report


def test_the_aggregator_records_its_outer_config_in_the_report() -> None:
    outcome = RoundOutcome(task_id=1, round_id=2, trainers=(), loss_before=None,
                           new_params=np.zeros(3, dtype=np.float32), state=AggregationState(), ratings={},
                           fingerprints=(), payouts=(), slashes=(), aggregated_count=0)
    config = PipelineConfig(outer=OuterConfig(lr=0.7, momentum=0.9, nesterov=True))

    info = aggregation_info(outcome, config)

    assert (info.outer_lr, info.outer_momentum, info.outer_nesterov) == (0.7, 0.9, True)
