"""Which replay sketch version a round uses: the setting for a task's first round, the task's own after that."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aggregator.settings import AggregatorSettings


def _settings(**fields: object) -> AggregatorSettings:
    return AggregatorSettings(rpc_url="http://127.0.0.1:8545", task_id=1, private_key_env="KEY", **fields)  # type: ignore[arg-type]


def test_a_new_task_uses_version_2_unless_the_setting_says_otherwise() -> None:
    assert _settings().pipeline_config(500, 7).filters.sketch_version == 2
    assert _settings(sketch_version=1).pipeline_config(500, 7).filters.sketch_version == 1


def test_a_task_keeps_the_sketch_version_of_its_published_state() -> None:
    # Its fingerprints are only comparable with sketches of their own version.
    assert _settings().pipeline_config(500, 7, sketch_version=1).filters.sketch_version == 1
    assert _settings(sketch_version=1).pipeline_config(500, 7, sketch_version=2).filters.sketch_version == 2


def test_the_sketch_version_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLCHAIN_AGGREGATOR_SKETCH_VERSION", "1")

    assert _settings().pipeline_config(500, 7).filters.sketch_version == 1


def test_an_unknown_sketch_version_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(sketch_version=3)


def test_a_new_task_uses_clip_version_2_and_a_task_keeps_the_clip_version_of_its_published_state() -> None:
    assert _settings().pipeline_config(500, 7).rule_params.clip_version == 2
    assert _settings(clip_version=1).pipeline_config(500, 7).rule_params.clip_version == 1
    assert _settings().pipeline_config(500, 7, clip_version=1).rule_params.clip_version == 1
    assert _settings(clip_version=1).pipeline_config(500, 7, clip_version=2).rule_params.clip_version == 2
    with pytest.raises(ValidationError):
        _settings(clip_version=3)
