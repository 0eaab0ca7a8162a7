"""Trainer settings from flags and FLCHAIN_TRAINER_* variables; shard choice; small pure helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from trainer.cli import load_settings, trainer_app
from trainer.dataset import ShardChoice, shard_choice
from trainer.errors import TrainerError
from trainer.registration import stake_needed_wei
from trainer.runtime import Fields, StopToken
from trainer.settings import DataSource, PartitionKind, TrainerSettings

BASE = {"rpc_url": "http://127.0.0.1:8545", "task_id": 1}


def test_settings_come_from_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLCHAIN_TRAINER_RPC_URL", "http://chain:8545")
    monkeypatch.setenv("FLCHAIN_TRAINER_TASK_ID", "4")
    monkeypatch.setenv("FLCHAIN_TRAINER_PRIVATE_KEY_ENV", "MY_KEY")
    monkeypatch.setenv("FLCHAIN_TRAINER_COMPRESSION", "topk-int8")

    settings = TrainerSettings()  # type: ignore[call-arg]

    assert (settings.rpc_url, settings.task_id, settings.private_key_env) == ("http://chain:8545", 4, "MY_KEY")
    assert settings.compression.value == "topk-int8"
    assert settings.max_rounds is None and settings.device == "auto" and settings.stake_wei is None


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLCHAIN_TRAINER_TASK_ID", "4")
    monkeypatch.setenv("FLCHAIN_TRAINER_RPC_URL", "http://chain:8545")

    settings = load_settings({"task_id": "9", "keystore": "/keys/a.json", "max_rounds": "2", "lr": None})

    assert settings.task_id == 9 and settings.max_rounds == 2 and settings.keystore == Path("/keys/a.json")
    assert settings.lr == 0.05  # not given: the default


@pytest.mark.parametrize(
    "signer",
    [{}, {"keystore": "/k.json", "private_key_env": "KEY"}, {"keystore_dir": "/keys", "private_key_env": "KEY"}],
)
def test_exactly_one_signer_source_is_required(signer: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one signer"):
        TrainerSettings(**BASE, **signer)  # type: ignore[arg-type]


def test_invalid_flags_become_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter, match="exactly one signer"):
        load_settings({"rpc_url": "http://x", "task_id": "1"})


def test_mnist_source_needs_both_idx_files() -> None:
    with pytest.raises(ValueError, match="mnist_images and mnist_labels"):
        TrainerSettings(**BASE, private_key_env="K", data_source=DataSource.MNIST, mnist_images=Path("x"))  # type: ignore[arg-type]


def test_help_lists_every_setting_with_its_environment_variable() -> None:
    result = CliRunner().invoke(trainer_app, ["run", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for flag in ("--rpc-url", "--keystore-dir", "--max-rounds", "--compression", "--stake-wei"):
        assert flag in result.output
    assert "FLCHAIN_TRAINER_TASK_ID" in result.output
    assert "--red-team" not in result.output and "--crash-after" not in result.output  # simulations and tests only


def _settings(**values: object) -> TrainerSettings:
    return TrainerSettings(**BASE, private_key_env="K", **values)  # type: ignore[arg-type]


def test_shard_comes_from_the_leased_keystore_in_directory_mode() -> None:
    assert shard_choice(_settings(), leased_index=2, leased_count=5) == ShardChoice(2, 5)
    assert shard_choice(_settings(num_shards=10), leased_index=2, leased_count=5).num_shards == 10


def test_explicit_shard_settings_are_used_and_checked() -> None:
    choice = shard_choice(_settings(shard_index=1, num_shards=3, partition="dirichlet", alpha=0.3, seed=4), None, None)

    assert choice == ShardChoice(1, 3, PartitionKind.DIRICHLET, 0.3, 4)
    assert shard_choice(_settings(), None, None) == ShardChoice(0, None)
    with pytest.raises(TrainerError, match="needs shard_index"):
        shard_choice(_settings(num_shards=3), None, None)
    with pytest.raises(ValueError, match="must be < num_shards"):
        _settings(shard_index=3, num_shards=3)


def test_stake_needed_covers_the_gap_to_min_stake() -> None:
    assert stake_needed_wei(current_stake_wei=100, min_stake_wei=100, wanted_stake_wei=None) == 0
    assert stake_needed_wei(current_stake_wei=0, min_stake_wei=100, wanted_stake_wei=None) == 100
    assert stake_needed_wei(current_stake_wei=0, min_stake_wei=100, wanted_stake_wei=250) == 250
    assert stake_needed_wei(current_stake_wei=80, min_stake_wei=100, wanted_stake_wei=10) == 20
    # a bonded claim: 300 samples at 2 per sample need 600, topped up when registered below it
    assert stake_needed_wei(current_stake_wei=0, min_stake_wei=100, wanted_stake_wei=None, bond_wei=600) == 600
    assert stake_needed_wei(current_stake_wei=150, min_stake_wei=100, wanted_stake_wei=None, bond_wei=600) == 450
    assert stake_needed_wei(current_stake_wei=600, min_stake_wei=100, wanted_stake_wei=None, bond_wei=600) == 0
    assert stake_needed_wei(current_stake_wei=0, min_stake_wei=100, wanted_stake_wei=900, bond_wei=600) == 900


def test_log_fields_render_as_key_value_pairs() -> None:
    text = str(Fields(round=3, digest=b"\x01\x02", loss=0.123456789, note="two words", empty="", missing=None))

    assert text == 'round=3 digest=0x0102 loss=0.123457 note="two words" empty=""'


def test_stop_token_interrupts_waiting() -> None:
    stop = StopToken()
    assert stop.wait(0.0) is False
    stop.request()
    assert stop.wait(10.0) is True
