"""MNIST-1D and Shakespeare loaders on the real generated and extracted data: sizes, roles, splits, and that the
sponsor's held-out part never reaches a trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregator.evaldata import ValidationSource, load_validation
from bench.data import load_bench_data
from bench.settings import DataSettings
from flchain.ml import shakespeare
from flchain.ml.errors import DataError
from flchain.ml.mnist1d_data import mnist1d_heldout, mnist1d_signals, mnist1d_split
from flchain.ml.specs import spec_from_name
from trainer.dataset import ShardChoice, load_local_dataset
from trainer.settings import DataSource, TrainerSettings


def _trainer_settings(source: DataSource, **extra: object) -> TrainerSettings:
    return TrainerSettings(rpc_url="http://127.0.0.1:1", task_id=1, private_key_env="UNUSED", data_source=source,
                           **extra)  # type: ignore[arg-type]


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(x)}


def test_mnist1d_is_the_generators_4000_train_and_1000_test_signals_of_40_samples() -> None:
    split = mnist1d_split()

    assert (len(split.train), len(split.val), len(split.test)) == (4000, 500, 500)
    assert split.train.input_shape == (1, 40) and split.train.num_classes == 10
    assert set(np.unique(split.train.y)) == set(range(10))
    assert len(mnist1d_heldout()) == 1000


def test_mnist1d_trainer_data_never_holds_a_heldout_signal() -> None:
    spec = spec_from_name("cnn1d-mnist1d")
    trainer_data = load_local_dataset(_trainer_settings(DataSource.MNIST1D), spec, ShardChoice(0, None))
    validation = load_validation(ValidationSource.MNIST1D, None, spec)

    assert len(trainer_data) == 4000 and len(validation) == 1000
    assert not _rows(trainer_data.x) & _rows(validation.x)


def test_shakespeare_parses_every_play_into_roles_with_enough_lines() -> None:
    roles = shakespeare.load_roles()

    assert len({r.play for r in roles}) == 36  # the 36 plays of the edition; poems have no speakers
    assert len(roles) == 474
    assert all(r.num_lines >= shakespeare.DEFAULT_MIN_LINES for r in roles)
    assert "lear/Kent" in {r.key for r in roles}
    assert all("[" not in r.text for r in roles)  # stage directions removed


def test_a_speech_is_attributed_to_its_speaker_and_stage_directions_dropped() -> None:
    text = "Title\n\nACT I.\n\nScene I. A room.\n\n[Enter Kent.]\n\nKent.\nI thought the King\nhad more affected.\n\n" \
           "Glou.\nSpeak what we feel. [Aside.]\n\nKent.\nAgain.\n"

    speeches = shakespeare.parse_play(text)

    assert speeches == {"Kent": ["I thought the King", "had more affected.", "Again."], "Glou": ["Speak what we feel."]}


def test_role_split_is_disjoint_and_heldout_text_never_in_trainer_data() -> None:
    split = shakespeare.default_role_split()
    spec = spec_from_name("gpt-shakespeare-small")

    trainer_data = load_local_dataset(_trainer_settings(DataSource.SHAKESPEARE, text_stride=16), spec,
                                      ShardChoice(0, None))
    validation = load_validation(ValidationSource.SHAKESPEARE, None, spec, text_stride=16)

    assert (len(split.train), len(split.heldout)) == (427, 47)
    assert not {r.key for r in split.train} & {r.key for r in split.heldout}
    assert len(trainer_data) > 5 * len(validation) > 0
    heldout_windows = _rows(validation.x)
    assert not any(row in heldout_windows for row in _rows(trainer_data.x))


def test_shards_hold_whole_distinct_roles_and_windows_predict_the_next_character() -> None:
    roles = shakespeare.default_role_split().train
    shards = [shakespeare.roles_of_shard(roles, i, 4) for i in range(4)]
    role = roles[0]

    x, y = shakespeare.role_windows(role, 80, 8)

    assert sum(len(s) for s in shards) == len(roles)
    assert len({r.key for s in shards for r in s}) == len(roles)
    assert shakespeare.decode_ids(x[1].astype(int)) == role.text[8:88]
    assert shakespeare.decode_ids([y[1]]) == role.text[88]
    assert len(x) == len(range(0, len(role.text) - 80, 8))


def test_vocabulary_is_fixed_printable_ascii_with_one_unknown_id() -> None:
    ids = shakespeare.encode_text("Ab ~\né")

    assert ids.tolist() == [34, 67, 1, 95, 0, 0]
    assert shakespeare.decode_ids(ids[:4]) == "Ab ~"


def test_missing_texts_raise_an_error_naming_the_setup_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="shakespeare_fetch"):
        shakespeare.load_roles(tmp_path)


def test_generated_signals_at_the_published_seed_are_the_published_test_part_and_another_seed_shares_none() -> None:
    published = mnist1d_heldout()
    at_42 = mnist1d_signals(42, 1000, "seed-42")
    other = mnist1d_signals(100_001, 200, "fresh")

    assert _rows(at_42.x) == _rows(published.x) and sorted(at_42.y.tolist()) == sorted(published.y.tolist())
    assert len(other) == 200 and other.x.shape == (200, 1, 40) and other.x.dtype == np.float32
    assert not _rows(other.x) & _rows(published.x) and not _rows(other.x) & _rows(mnist1d_split().train.x)
    with pytest.raises(DataError, match="count"):
        mnist1d_signals(1, 0, "empty")


def test_fresh_bench_evaluation_batches_differ_every_round_and_are_stable_within_one() -> None:
    fixed = load_bench_data(DataSettings(workload="mnist1d"))
    fresh = load_bench_data(DataSettings(workload="mnist1d", fresh_eval=True))
    first, again, second = fresh.eval_for_round(1), fresh.eval_for_round(1), fresh.eval_for_round(2)

    assert fixed.eval_for_round(1) is fixed.eval and fixed.eval_for_round(7) is fixed.eval
    assert len(first) == len(fresh.eval) and np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert not _rows(first.x) & _rows(second.x)
    assert not _rows(first.x) & (_rows(fresh.eval.x) | _rows(fresh.test.x) | _rows(fresh.train.x))
    with pytest.raises(ValueError, match="--workload mnist1d"):
        load_bench_data(DataSettings(fresh_eval=True))
