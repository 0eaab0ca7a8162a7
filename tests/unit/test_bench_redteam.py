"""Red-team behaviours (bench.redteam, simulations only) on flchain.ml.attacks, and the honest update they replace."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bench.redteam.kinds import RedTeamConfig, RedTeamKind, distort, pick_copy_source, poisoned_dataset, warn_loudly
from bench.redteam.producer import RedTeamSettings
from flchain.chain.tasklog import RevealedUpdate
from flchain.codec import Compression, decode_update
from flchain.ml.data import Dataset
from flchain.ml.params import module_to_params
from flchain.ml.specs import spec_from_name
from trainer.model import GlobalModel, expected_shapes
from trainer.training import EncodeConfig, TrainConfig, encode_delta, round_seed, train_update

DELTA = {"b": np.array([1.0, -2.0], dtype=np.float32), "w": np.ones((2, 2), dtype=np.float32)}


def _tiny_digits(n: int = 40) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    return Dataset(x, np.arange(n, dtype=np.int64) % 10, "tiny", (1, 8, 8), 10)


def test_distortions_of_an_honest_delta() -> None:
    flipped = distort(DELTA, RedTeamConfig(RedTeamKind.SIGN_FLIP), round_id=1)
    boosted = distort(DELTA, RedTeamConfig(RedTeamKind.SCALED, scale=10.0), round_id=1)
    noisy = distort(DELTA, RedTeamConfig(RedTeamKind.GAUSSIAN_NOISE, noise_std=0.5, seed=3), round_id=1)

    np.testing.assert_array_equal(flipped["b"], [-1.0, 2.0])
    np.testing.assert_array_equal(boosted["w"], np.full((2, 2), 10.0))
    assert not np.array_equal(noisy["w"], DELTA["w"])
    np.testing.assert_array_equal(DELTA["b"], [1.0, -2.0])  # inputs untouched
    with pytest.raises(ValueError, match="does not distort"):
        distort(DELTA, RedTeamConfig(RedTeamKind.COPYCAT), round_id=1)


def test_label_flip_maps_labels_to_their_mirror_class() -> None:
    data = _tiny_digits()

    flipped = poisoned_dataset(data, RedTeamConfig(RedTeamKind.LABEL_FLIP, fraction=1.0))

    np.testing.assert_array_equal(flipped.y, 9 - data.y)


def test_copycat_copies_the_earliest_other_trainer() -> None:
    def sub(trainer: str, block: int, log_index: int) -> RevealedUpdate:
        return RevealedUpdate(1, trainer, b"\x01" * 32, f"cid-{trainer}", 10, block, log_index)

    submissions = [sub("0xME", 5, 0), sub("0xB", 7, 0), sub("0xA", 6, 3), sub("0xC", 6, 4)]

    assert pick_copy_source(submissions, "0xme") == submissions[2]
    assert pick_copy_source([sub("0xME", 5, 0)], "0xME") is None


def test_red_team_mode_is_announced_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_loudly(RedTeamConfig(RedTeamKind.SCALED))

    assert "RED-TEAM MODE 'scaled'" in caplog.text


def test_honest_update_is_base_minus_local_and_decodes_against_the_base_model() -> None:
    spec = spec_from_name("mlp-digits")
    base = GlobalModel(b"\x07" * 32, "cid", module_to_params(spec.build()), 0)

    update = train_update(base, spec, _tiny_digits(), TrainConfig(steps=3, batch_size=8, lr=0.1), round_id=2)
    blob = encode_delta(update.delta, spec, base.digest, EncodeConfig(Compression.TOPK_INT8, 0.25))
    decoded = decode_update(
        blob,
        expected_spec_hash=spec.spec_hash(),
        expected_base_digest=base.digest,
        expected_shapes=expected_shapes(spec),
    )

    assert update.num_samples == 40 and update.steps == 3
    assert decoded.header.compression is Compression.TOPK_INT8
    nonzero = sum(int(np.count_nonzero(t)) for t in decoded.tensors.values())
    assert 0 < nonzero <= sum(int(np.ceil(0.25 * t.size)) for t in decoded.tensors.values())


def test_round_seeds_differ_per_round_and_shard() -> None:
    seeds = {round_seed(0, r, s) for r in range(1, 4) for s in range(3)}

    assert len(seeds) == 9


def test_red_team_config_takes_every_knob_from_its_settings_and_the_trainer_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"KIND": "copycat", "SCALE": "3", "NOISE_STD": "0.2", "FRACTION": "0.5",
                        "COPYCAT_LEAD_S": "7", "COPYCAT_NOISE_STD": "0.001"}.items():
        monkeypatch.setenv(f"FLCHAIN_REDTEAM_{name}", value)

    config = RedTeamSettings().config(seed=11)  # type: ignore[call-arg]

    assert config == RedTeamConfig(RedTeamKind.COPYCAT, 3.0, 0.2, 0.5, 7.0, 0.001, 11)


def test_the_trainer_service_has_no_red_team_settings() -> None:
    from trainer.settings import TrainerSettings

    assert not [name for name in TrainerSettings.model_fields if "red_team" in name or "copycat" in name]
