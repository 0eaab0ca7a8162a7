"""Validation data and evaluation batches: held out from trainers, seeded per round, strictly decoded."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.bootstrap import card_validation
from aggregator.evaldata import (
    EvalDataError,
    ValidationSource,
    batch_loss_fn,
    decode_eval_batch,
    digits_heldout,
    draw_eval_batch,
    encode_eval_batch,
    eval_batch_salt,
    eval_salt,
    eval_seed,
    fixed_pool,
    load_validation,
    redraw_eval_batch,
)
from flchain.ml.data import Dataset, digits_split, load_digits
from flchain.ml.params import ParamLayout, module_to_params
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.ml.train import Evaluator
from trainer.dataset import load_source
from trainer.settings import TrainerSettings

SPEC = spec_from_name("mlp-digits")


def trainer_digits() -> Dataset:
    """What a trainer with the default data source actually trains on."""
    settings = TrainerSettings(rpc_url="http://127.0.0.1:1", task_id=1, private_key_env="UNUSED_KEY_VAR")
    return load_source(settings)


def test_trainer_default_data_is_the_train_part_of_the_digits_split() -> None:
    assert np.array_equal(trainer_digits().x, digits_split().train.x)


def _rows(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.asarray(x).reshape(len(x), -1)]


def test_heldout_digits_never_overlap_the_trainers_split() -> None:
    train = trainer_digits()
    heldout = digits_heldout()

    # Together they are exactly the dataset, each sample once: no sample is in both.
    assert sorted(_rows(train.x) + _rows(heldout.x)) == sorted(_rows(load_digits().x))
    assert heldout.input_shape == SPEC.input_shape


def test_eval_batch_is_a_function_of_task_and_round() -> None:
    heldout = digits_heldout()

    first, again = draw_eval_batch(heldout, 1, 2, 64), draw_eval_batch(heldout, 1, 2, 64)
    other_round, other_task = draw_eval_batch(heldout, 1, 3, 64), draw_eval_batch(heldout, 2, 2, 64)

    np.testing.assert_array_equal(first.x, again.x)
    assert len({eval_seed(1, 2), eval_seed(1, 3), eval_seed(2, 2)}) == 3
    assert not np.array_equal(first.y, other_round.y) or not np.array_equal(first.x, other_round.x)
    assert not np.array_equal(first.x, other_task.x)
    assert len(draw_eval_batch(heldout, 1, 1, 10_000)) == len(heldout)


def test_eval_batch_round_trips_and_bytes_are_stable() -> None:
    batch = draw_eval_batch(digits_heldout(), 5, 1, 32)

    data = encode_eval_batch(batch, 5, 1)
    decoded = decode_eval_batch(data, SPEC)

    assert data == encode_eval_batch(draw_eval_batch(digits_heldout(), 5, 1, 32), 5, 1)
    np.testing.assert_array_equal(decoded.x, batch.x)
    np.testing.assert_array_equal(decoded.y, batch.y)


def test_eval_batch_for_another_model_or_garbage_is_refused() -> None:
    data = encode_eval_batch(draw_eval_batch(digits_heldout(), 5, 1, 32), 5, 1)
    other = ModelSpec("wide", "mlp", (1, 4, 4), 10, hidden=(8,))

    with pytest.raises(EvalDataError):
        decode_eval_batch(data, other)
    with pytest.raises(EvalDataError):
        decode_eval_batch(b"\x00" * 40, SPEC)


def test_batch_loss_fn_is_the_evaluator_loss_of_the_flat_vector() -> None:
    evaluator = Evaluator(SPEC, draw_eval_batch(digits_heldout(), 1, 1, 50))
    params = module_to_params(SPEC.build())
    vector = ParamLayout.of(params).flatten(params)

    assert batch_loss_fn(evaluator)(vector.astype(np.float64)) == evaluator.evaluate(params).loss


def test_a_secret_salt_makes_the_batch_unpredictable_without_the_secret_and_stable_with_it() -> None:
    heldout = digits_heldout()
    public = draw_eval_batch(heldout, 1, 2, 64)  # what anyone could compute from (task, round) alone
    salt = eval_salt(b"aggregator secret", 1, 2)

    salted, again = draw_eval_batch(heldout, 1, 2, 64, salt), draw_eval_batch(heldout, 1, 2, 64, salt)
    other_secret = draw_eval_batch(heldout, 1, 2, 64, eval_salt(b"another secret", 1, 2))

    np.testing.assert_array_equal(salted.x, again.x)
    assert not np.array_equal(salted.x, public.x) and not np.array_equal(salted.x, other_secret.x)
    assert eval_salt(b"", 1, 2) == b"" and len(salt) == 32 and salt != eval_salt(b"aggregator secret", 1, 3)


def test_the_revealed_batch_carries_its_salt_so_anyone_with_the_data_draws_it_again_but_not_a_picked_one() -> None:
    heldout = digits_heldout()
    salt = eval_salt(b"aggregator secret", 1, 2)
    revealed = encode_eval_batch(draw_eval_batch(heldout, 1, 2, 64, salt), 1, 2, salt)
    picked = encode_eval_batch(heldout.subset(np.arange(64), name="picked"), 1, 2, salt)  # not what the salt draws

    assert eval_batch_salt(revealed) == salt
    assert redraw_eval_batch(fixed_pool(heldout), revealed, SPEC, 1, 2) == revealed
    assert redraw_eval_batch(fixed_pool(heldout), picked, SPEC, 1, 2) != picked
    assert redraw_eval_batch(fixed_pool(heldout), revealed, SPEC, 1, 3) != revealed  # another round draws other samples
    with pytest.raises(EvalDataError):
        eval_batch_salt(b"\x00" * 40)


def test_secret_mnist1d_validation_is_reproducible_with_the_secret_and_not_the_public_signals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator.evaldata import VALIDATION_SECRET_ENV, generator_seed
    from flchain.ml.mnist1d_data import mnist1d_heldout, mnist1d_split
    from flchain.ml.specs import spec_from_name

    spec = spec_from_name("cnn1d-mnist1d")
    monkeypatch.delenv(VALIDATION_SECRET_ENV, raising=False)
    with pytest.raises(EvalDataError, match=VALIDATION_SECRET_ENV):
        load_validation(ValidationSource.MNIST1D_SECRET, None, spec)
    monkeypatch.setenv(VALIDATION_SECRET_ENV, "zz" * 16)
    with pytest.raises(EvalDataError, match="hex"):
        load_validation(ValidationSource.MNIST1D_SECRET, None, spec)
    monkeypatch.setenv(VALIDATION_SECRET_ENV, "11" * 32)
    first = load_validation(ValidationSource.MNIST1D_SECRET, None, spec)
    again = load_validation(ValidationSource.MNIST1D_SECRET, None, spec)
    monkeypatch.setenv(VALIDATION_SECRET_ENV, "22" * 32)
    other = load_validation(ValidationSource.MNIST1D_SECRET, None, spec)

    assert generator_seed(bytes.fromhex("11" * 32)) != 42
    assert len(first) == 1000 and first.input_shape == spec.input_shape
    np.testing.assert_array_equal(first.x, again.x)
    assert not np.array_equal(first.x, other.x)
    public = np.concatenate([mnist1d_heldout().x, mnist1d_split().train.x]).reshape(-1, 40)
    rows = first.x.reshape(-1, 40)
    assert not any((np.abs(public - row).max(axis=1) < 1e-6).any() for row in rows[:50])  # none is a public signal


def test_fresh_mnist1d_rounds_are_judged_on_signals_no_other_round_sees_and_verify_draws_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator.evaldata import (
        VALIDATION_SECRET_ENV,
        ValidationSource,
        eval_pool,
        fresh_round_seed,
        load_validation,
        mnist1d_secret_heldout,
    )

    spec = spec_from_name("cnn1d-mnist1d")
    monkeypatch.delenv(VALIDATION_SECRET_ENV, raising=False)
    with pytest.raises(EvalDataError, match="mnist1d-fresh"):
        load_validation(ValidationSource.MNIST1D_FRESH, None, spec)
    monkeypatch.setenv(VALIDATION_SECRET_ENV, "11" * 32)
    secret = bytes.fromhex("11" * 32)
    validation = load_validation(ValidationSource.MNIST1D_FRESH, None, spec)
    pool = eval_pool(ValidationSource.MNIST1D_FRESH, validation, spec)
    salt = eval_salt(b"aggregator secret", 1, 2)
    batch = draw_eval_batch(pool(1, 2, 64), 1, 2, 64, salt)
    revealed = encode_eval_batch(batch, 1, 2, salt)
    rows = {row.tobytes() for row in batch.x}

    assert validation.x.tobytes() == mnist1d_secret_heldout(secret).x.tobytes()  # whole-set metrics as before
    assert len(batch) == 64 and batch.input_shape == spec.input_shape
    assert np.array_equal(pool(1, 2, 64).x, pool(1, 2, 64).x)
    for other in (pool(1, 3, 64), pool(2, 2, 64), pool(1, 1, 256)):  # other rounds, another task
        assert not rows & {row.tobytes() for row in other.x}
    assert not rows & {row.tobytes() for row in validation.x}
    assert len({fresh_round_seed(secret, 1, r) for r in range(1, 200)}) == 199
    assert redraw_eval_batch(pool, revealed, spec, 1, 2) == revealed
    assert redraw_eval_batch(pool, revealed, spec, 1, 3) != revealed
    assert redraw_eval_batch(fixed_pool(validation), revealed, spec, 1, 2) != revealed  # not the secret pool's
    assert eval_pool(ValidationSource.MNIST1D_SECRET, validation, spec)(1, 2, 64) is validation


def test_validation_data_of_another_shape_is_refused_with_what_would_fit() -> None:
    spec = spec_from_name("gpt-shakespeare-small")

    with pytest.raises(EvalDataError, match=r"samples of shape \(1, 8, 8\).*takes \(80,\).*task card"):
        load_validation(ValidationSource.DIGITS, None, spec)


@pytest.mark.parametrize(("dataset", "source"), [
    ("shakespeare", ValidationSource.SHAKESPEARE), ("mnist1d", ValidationSource.MNIST1D),
    ("Digits", ValidationSource.DIGITS), ("mnist", ValidationSource.DIGITS),
    ("mnist1d-secret", ValidationSource.DIGITS), (None, ValidationSource.DIGITS),
])
def test_the_task_cards_dataset_names_only_a_public_validation_source(dataset: str | None,
                                                                        source: ValidationSource) -> None:
    assert card_validation(dataset) is source
