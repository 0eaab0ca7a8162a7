"""Validation metrics of the language task: a reproducible sampled line for character models, none otherwise."""

from __future__ import annotations

import numpy as np

from aggregator.evaldata import validation_metrics
from flchain.ml.data import Dataset
from flchain.ml.params import module_to_params
from flchain.ml.sampling import sample_line
from flchain.ml.specs import spec_from_name
from flchain.ml.train import Evaluator


def _chars(n: int, window: int) -> Dataset:
    x = np.random.default_rng(0).integers(1, 96, size=(n, window)).astype(np.float32)
    return Dataset(x, x[:, 0].astype(np.int64), "chars", (window,), 96)


def test_sampled_line_is_reproducible_printable_and_depends_on_the_weights() -> None:
    spec = spec_from_name("gpt-shakespeare-small", input_shape=(16,))
    params = module_to_params(spec.build())
    other = module_to_params(spec_from_name("gpt-shakespeare-small", input_shape=(16,), seed=5).build())

    line = sample_line(spec, params)

    assert line == sample_line(spec, params)
    assert len(line) == 60 and line.isprintable()
    assert line != sample_line(spec, other)


def test_character_model_metrics_carry_a_sample_and_classifier_metrics_do_not() -> None:
    char_spec = spec_from_name("lstm-shakespeare", input_shape=(16,), hidden=(32,))
    char_eval = Evaluator(char_spec, _chars(32, 16))
    vector = char_eval.layout.flatten(module_to_params(char_spec.build()))
    mlp_spec = spec_from_name("mlp-mnist1d")
    x = np.zeros((8, 1, 40), np.float32)
    mlp_eval = Evaluator(mlp_spec, Dataset(x, np.arange(8, dtype=np.int64), "sig", (1, 40), 10))
    mlp_vector = mlp_eval.layout.flatten(module_to_params(mlp_spec.build()))

    char_metrics = validation_metrics(char_eval, vector, vector)
    mlp_metrics = validation_metrics(mlp_eval, mlp_vector, mlp_vector)

    assert char_metrics.sample_text is not None and len(char_metrics.sample_text) == 60
    assert mlp_metrics.sample_text is None
    assert abs(char_metrics.val_loss_after - np.log(96)) < 0.1  # untrained: about uniform over the vocabulary
