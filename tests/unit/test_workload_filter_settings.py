"""A workload's aggregator settings (norm filter, outer momentum): read by the aggregator, given by the demo, used by
the benchmarks; the norm filter still rejects a scaled-up update."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from aggregator.filters import FilterConfig, RejectReason, SubmissionMeta, filter_round
from aggregator.outer import OuterConfig
from aggregator.settings import AggregatorSettings
from bench.federation import workload_pipeline
from flchain.devnet.workloads import MNIST1D_NORM_CLIP, MNIST1D_NORM_K, MNIST1D_OUTER_MOMENTUM, WORKLOADS, WorkloadName
from trainer.settings import TrainerSettings


def _settings(**fields: object) -> AggregatorSettings:
    return AggregatorSettings(rpc_url="http://127.0.0.1:8545", task_id=1, private_key_env="KEY", **fields)  # type: ignore[arg-type]


def _round(norms: list[float], config: FilterConfig) -> list[RejectReason | None]:
    """Independent random directions with the given norms, judged by the filters."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(len(norms), 2_000))
    rows *= (np.array(norms) / np.linalg.norm(rows, axis=1))[:, None]
    metas = [SubmissionMeta(f"0x{i + 1:040x}", bytes([i]) * 32, 10, i) for i in range(len(norms))]
    return [v.reason for v in filter_round(rows.astype(np.float32), metas, (), config).verdicts]


def test_the_norm_filter_setting_is_read_from_the_environment_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings().pipeline_config(500, 7).filters.norm_k == 3.0

    monkeypatch.setenv("FLCHAIN_AGGREGATOR_NORM_K", "5")

    assert _settings().pipeline_config(500, 7).filters.norm_k == 5.0
    with pytest.raises(ValidationError):
        _settings(norm_k=1.0)


def test_the_mnist1d_demo_aggregator_and_the_benchmark_use_the_workloads_norm_filter() -> None:
    mnist1d, digits = WORKLOADS[WorkloadName.MNIST1D], WORKLOADS[WorkloadName.DIGITS]

    assert float(mnist1d.aggregator_settings["NORM_K"]) == MNIST1D_NORM_K == 3.0
    assert float(digits.aggregator_settings["NORM_K"]) == 3.0
    assert workload_pipeline("mnist1d").filters.norm_k == MNIST1D_NORM_K
    assert workload_pipeline("digits").filters.norm_k == 3.0
    assert workload_pipeline("mnist1d", aggregate_positive_only=True).aggregate_positive_only
    assert workload_pipeline("mnist1d").filters.norm_clip is MNIST1D_NORM_CLIP is True
    assert not workload_pipeline("digits").filters.norm_clip and "NORM_CLIP" not in digits.aggregator_settings


def test_the_mnist1d_aggregator_reads_the_workloads_norm_scaling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _settings().pipeline_config(500, 7).filters.norm_clip
    for name, value in WORKLOADS[WorkloadName.MNIST1D].aggregator_settings.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{name}", value)

    assert _settings().pipeline_config(500, 7).filters == FilterConfig(sketch_seed=7, norm_k=MNIST1D_NORM_K,
                                                                       norm_clip=True)


def test_the_mnist1d_aggregator_and_every_benchmark_step_with_the_workloads_outer_momentum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench.robustness import pipeline_config
    from bench.settings import RuleConfig

    mnist1d, digits = WORKLOADS[WorkloadName.MNIST1D], WORKLOADS[WorkloadName.DIGITS]
    for name, value in mnist1d.aggregator_settings.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{name}", value)

    assert _settings().pipeline_config(500, 7).outer.momentum == MNIST1D_OUTER_MOMENTUM == 0.5
    assert "OUTER_MOMENTUM" not in digits.aggregator_settings
    assert workload_pipeline("mnist1d").outer.momentum == 0.5
    assert workload_pipeline("digits").outer.momentum == 0.0
    assert pipeline_config(RuleConfig.CENTERED_CLIP, "mnist1d").outer.momentum == 0.5
    assert pipeline_config(RuleConfig.FEDAVG_PLAIN, "mnist1d").outer.momentum == 0.0  # the unprotected reference


def test_mnist1d_norm_filter_bounds_a_4x_update_and_a_10x_scaled_one_and_keeps_the_honest_ones() -> None:
    """A sign flip at 4x the honest norm is the robustness benchmark's attacker: a filter at 5 let it through whole;
    at 3 it is rejected, or with the workload's scaling aggregated at the median norm (and not paid)."""
    honest = [1.0, 0.9, 1.1, 1.0, 0.95, 1.05, 1.0, 0.9]

    at_three = _round([*honest, 4.0, 10.0], FilterConfig(norm_k=MNIST1D_NORM_K))
    at_five = _round([*honest, 4.0, 10.0], FilterConfig(norm_k=5.0))

    assert at_three[-2:] == [RejectReason.NORM_OUTLIER, RejectReason.NORM_OUTLIER]
    assert at_three[:-2] == [None] * len(honest)
    assert at_five[-2:] == [None, RejectReason.NORM_OUTLIER]
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(10, 2_000))
    rows *= (np.array([*honest, 4.0, 10.0]) / np.linalg.norm(rows, axis=1))[:, None]
    metas = [SubmissionMeta(f"0x{i + 1:040x}", bytes([i]) * 32, 10, i) for i in range(10)]
    scaled = filter_round(rows.astype(np.float32), metas, (), workload_pipeline("mnist1d").filters)
    median = float(np.median([*honest, 4.0, 10.0]))
    assert [v.reason for v in scaled.verdicts] == [None] * 10
    assert sorted(scaled.scales) == [8, 9]
    assert [round(4.0 * scaled.scales[8], 6), round(10.0 * scaled.scales[9], 6)] == [round(median, 6)] * 2


@pytest.mark.parametrize("name", list(WorkloadName))
def test_every_workloads_aggregator_and_its_benchmark_pipeline_make_the_same_outer_step(
    monkeypatch: pytest.MonkeyPatch, name: WorkloadName,
) -> None:
    for key, value in WORKLOADS[name].aggregator_settings.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{key}", value)

    assert _settings().pipeline_config(500, 7).outer == workload_pipeline(name.value).outer


def test_a_workloads_outer_lr_and_nesterov_momentum_reach_the_aggregator(monkeypatch: pytest.MonkeyPatch) -> None:
    workload = dataclasses.replace(WORKLOADS[WorkloadName.DIGITS], outer_lr=0.7, outer_momentum=0.9,
                                   outer_nesterov=True)
    assert "OUTER_LR" not in WORKLOADS[WorkloadName.DIGITS].aggregator_settings
    for key, value in workload.aggregator_settings.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{key}", value)

    assert _settings().pipeline_config(500, 7).outer == OuterConfig(lr=0.7, momentum=0.9, nesterov=True)


@pytest.mark.parametrize(("name", "lr"), [(WorkloadName.DIGITS, 0.05), (WorkloadName.MNIST1D, 0.2),
                                          (WorkloadName.SHAKESPEARE, 0.5)])
def test_the_public_work_updates_train_at_the_workloads_local_lr(
    monkeypatch: pytest.MonkeyPatch, name: WorkloadName, lr: float
) -> None:
    workload = WORKLOADS[name]
    trainer_lr = dict(workload.trainer_env).get("LR")
    default = TrainerSettings.model_fields["lr"].default  # the trainers' local lr, the workload's or the default
    assert lr == workload.public_work_lr == (default if trainer_lr is None else float(trainer_lr))
    assert workload_pipeline(name.value).contribution.public_work.lr == lr
    for key, value in workload.aggregator_settings.items():
        monkeypatch.setenv(f"FLCHAIN_AGGREGATOR_{key}", value)
    assert _settings().pipeline_config(500, 7).contribution.public_work.lr == lr
