"""Local training and evaluation: learning on real digits, determinism, inputs untouched, Evaluator reuse."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from flchain.ml.data import Dataset, Split, load_digits, train_val_test_split
from flchain.ml.errors import ParamsError, TrainError
from flchain.ml.params import Params, flatten, module_to_params
from flchain.ml.specs import ModelSpec, spec_from_name
from flchain.ml.train import (
    Evaluator,
    TrainResult,
    evaluate,
    local_train,
    noisy_labels,
    resolve_device,
    torch_threads,
)


def _train(
    start: nn.Module | Params, spec: ModelSpec, dataset: Dataset, *, seed: int, label_noise: float = 0.0
) -> TrainResult:
    """60 steps of SGD with momentum: enough for an MLP to learn digits well."""
    return local_train(
        start, spec, dataset, steps=60, batch_size=32, lr=0.1, momentum=0.9, seed=seed, label_noise=label_noise
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is fastest and does not collapse when other test processes share the cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits() -> Split:
    return train_val_test_split(load_digits(), (0.8, 0.0, 0.2), seed=0)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return spec_from_name("mlp-digits")


@pytest.fixture(scope="module")
def initial(spec: ModelSpec) -> Params:
    return module_to_params(spec.build())


def _equal(a: Params, b: Params) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_mlp_training_lowers_loss_and_beats_chance_on_held_out_digits(
    digits: Split, spec: ModelSpec, initial: Params
) -> None:
    before = evaluate(initial, spec, digits.test)

    result = _train(initial, spec, digits.train, seed=0)
    after = evaluate(result.params, spec, digits.test)

    assert len(digits.test) == 360
    assert after.loss < 0.5 * before.loss
    assert after.accuracy > 0.8  # chance is 0.1
    assert result.num_samples == len(digits.train) and result.steps == 60
    assert result.last_loss < result.loss


def test_cnn_training_also_learns(digits: Split) -> None:
    cnn = spec_from_name("cnn-digits")
    start = module_to_params(cnn.build())

    result = _train(start, cnn, digits.train, seed=0)

    assert evaluate(result.params, cnn, digits.test).loss < evaluate(start, cnn, digits.test).loss


def test_same_seed_gives_bit_identical_params_and_other_seed_differs(
    digits: Split, spec: ModelSpec, initial: Params
) -> None:
    a = _train(initial, spec, digits.train, seed=4)
    b = _train(initial, spec, digits.train, seed=4)
    c = _train(initial, spec, digits.train, seed=5)

    assert _equal(a.params, b.params) and a.loss == b.loss
    assert not _equal(a.params, c.params)


def test_training_never_mutates_the_given_params_or_module_or_global_rng(
    digits: Split, spec: ModelSpec, initial: Params
) -> None:
    params_copy = {k: v.copy() for k, v in initial.items()}
    model = spec.build()
    model_before = module_to_params(model)
    rng_before = torch.get_rng_state()
    deterministic_before = torch.are_deterministic_algorithms_enabled()

    from_params = _train(initial, spec, digits.train, seed=1)
    from_module = _train(model, spec, digits.train, seed=1)

    assert _equal(initial, params_copy)
    assert _equal(module_to_params(model), model_before)
    assert torch.equal(rng_before, torch.get_rng_state())
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before  # restored, whatever it was
    assert _equal(from_params.params, from_module.params)  # model and initial hold the same weights


def test_label_noise_changes_training_and_noisy_labels_is_seeded(digits: Split, spec: ModelSpec) -> None:
    y = np.arange(1000) % 10

    noisy = noisy_labels(y, 10, 0.5, seed=3)

    assert np.array_equal(noisy, noisy_labels(y, 10, 0.5, seed=3))
    assert 0.3 < np.mean(noisy != y) <= 0.5  # half replaced, about a tenth by the same class
    start = module_to_params(spec.build())
    clean = _train(start, spec, digits.train, seed=0)
    dirty = _train(start, spec, digits.train, seed=0, label_noise=1.0)
    assert evaluate(dirty.params, spec, digits.test).accuracy < evaluate(clean.params, spec, digits.test).accuracy


def test_evaluator_reuses_one_module_and_agrees_with_evaluate(digits: Split, spec: ModelSpec, initial: Params) -> None:
    trained = _train(initial, spec, digits.train, seed=0).params
    evaluator = Evaluator(spec, digits.test, batch_size=100)  # several batches, the last one partial

    results = evaluator.evaluate_many([initial, trained])
    vector, _ = flatten(trained)

    assert results[0].loss == pytest.approx(evaluate(initial, spec, digits.test).loss, rel=1e-5)
    assert results[1].loss == pytest.approx(evaluate(trained, spec, digits.test).loss, rel=1e-5)
    assert results[1].accuracy == evaluate(trained, spec, digits.test).accuracy
    assert evaluator.evaluate_vector(vector) == results[1]
    assert evaluator.evaluate_vector(vector.astype(np.float64)) == results[1]
    with pytest.raises(ParamsError):
        evaluator.evaluate_vector(vector[:-1])
    assert evaluator.loss(trained) == pytest.approx(results[1].loss, rel=1e-6)
    assert results[1].num_samples == 360


def test_a_buffer_evaluated_again_is_read_as_it_is_now(digits: Split, spec: ModelSpec, initial: Params) -> None:
    """The scoring loop rewrites one float32 buffer between passes: the evaluator's cached views of it must see the
    new contents, and a different array must not be mistaken for it."""
    trained = _train(initial, spec, digits.train, seed=0).params
    evaluator = Evaluator(spec, digits.test)
    first, second = flatten(initial)[0].astype(np.float32), flatten(trained)[0].astype(np.float32)
    buffer = first.copy()

    assert evaluator.loss_vector(buffer) == evaluator.loss_vector(first.copy())
    np.copyto(buffer, second)
    assert evaluator.loss_vector(buffer) == pytest.approx(evaluate(trained, spec, digits.test).loss, rel=1e-5)
    assert evaluator.loss_vector(buffer) != evaluator.loss_vector(first)
    assert evaluator.evaluate_vector(first) == Evaluator(spec, digits.test).evaluate_vector(first)


def test_two_alternating_buffers_are_each_read_as_they_are_now(
    digits: Split, spec: ModelSpec, initial: Params
) -> None:
    """`aggregator.scoring` fills one buffer while the evaluator reads the other: both stay cached, and a third
    array pushes the oldest out without being mistaken for it."""
    trained = _train(initial, spec, digits.train, seed=0).params
    evaluator, fresh = Evaluator(spec, digits.test), Evaluator(spec, digits.test)
    first, second = flatten(initial)[0].astype(np.float32), flatten(trained)[0].astype(np.float32)
    a, b = first.copy(), second.copy()

    for _ in range(2):
        assert evaluator.loss_vector(a) == fresh.loss_vector(a.copy())
        assert evaluator.loss_vector(b) == fresh.loss_vector(b.copy())
        np.copyto(a, second if a[0] == first[0] else first)  # swap the contents under the cached views
        np.copyto(b, first if b[0] == second[0] else second)
    third = first.copy()
    assert evaluator.loss_vector(third) == fresh.loss_vector(first.copy())
    assert evaluator.loss_vector(a) == fresh.loss_vector(a.copy())


def test_evaluate_accepts_read_only_params(digits: Split, spec: ModelSpec, initial: Params) -> None:
    frozen = {k: v.copy() for k, v in initial.items()}
    for v in frozen.values():
        v.setflags(write=False)

    assert evaluate(frozen, spec, digits.test) == evaluate(initial, spec, digits.test)


def test_shape_mismatch_and_bad_arguments_raise_train_error(digits: Split, spec: ModelSpec, initial: Params) -> None:
    flat = digits.test.reshaped((64,))
    empty = digits.test.subset(np.zeros(0, dtype=np.int64))

    with pytest.raises(TrainError, match="reshaped"):
        evaluate(initial, spec, flat)
    with pytest.raises(TrainError):
        local_train(initial, spec, empty, steps=1, batch_size=8, lr=0.1, seed=0)
    with pytest.raises(TrainError):
        local_train(initial, spec, digits.train, steps=0, batch_size=8, lr=0.1, seed=0)
    with pytest.raises(TrainError):
        local_train(initial, spec, digits.train, steps=1, batch_size=8, lr=-1.0, seed=0)


def test_non_finite_loss_raises_instead_of_returning_nan(spec: ModelSpec, initial: Params) -> None:
    poisoned = Dataset(np.full((4, 1, 8, 8), np.nan, np.float32), np.array([0, 1, 2, 3]), "nan", (1, 8, 8), 10)

    with pytest.raises(TrainError, match="loss became"):
        local_train(initial, spec, poisoned, steps=3, batch_size=2, lr=0.1, seed=0)


def test_batch_larger_than_dataset_uses_the_whole_dataset(spec: ModelSpec, initial: Params) -> None:
    tiny = Dataset(np.zeros((3, 1, 8, 8), np.float32), np.array([0, 1, 2]), "tiny", (1, 8, 8), 10)

    result = local_train(initial, spec, tiny, steps=2, batch_size=64, lr=0.1, seed=0)

    assert result.num_samples == 3 and np.isfinite(result.loss)


def test_torch_threads_restores_the_previous_count() -> None:
    before = torch.get_num_threads()

    with torch_threads(2):
        inside = torch.get_num_threads()

    assert inside == 2 and torch.get_num_threads() == before
    with pytest.raises(TrainError):
        torch_threads(0).__enter__()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(TrainError):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(TrainError):
            resolve_device("cuda")
