"""The character transformer learns under plain SGD, the trainers' optimizer: on a task whose next character is a
function of the last one (a bigram rule), its last position reads its own token and predicts far above the level of a
model that ignores it, within a few hundred steps (a check of the window -> next-character alignment and the loss)."""

from __future__ import annotations

import numpy as np

from flchain.ml.data import Dataset
from flchain.ml.params import module_to_params
from flchain.ml.shakespeare import VOCAB_SIZE
from flchain.ml.specs import spec_from_name
from flchain.ml.train import Evaluator, local_train

SYMBOLS = 8
CONTEXT = 16


def bigram_task(samples: int, seed: int) -> Dataset:
    """Windows of random symbols 0..7; the next symbol is (last + 1) mod 8, so chance and unigram level is 1/8."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, SYMBOLS, size=(samples, CONTEXT))
    y = (x[:, -1] + 1) % SYMBOLS
    return Dataset(x.astype(np.float32), y.astype(np.int64), f"bigram-{seed}", (CONTEXT,), VOCAB_SIZE)


def test_character_transformer_learns_a_bigram_rule_with_plain_sgd() -> None:
    # Prepare: a one-block transformer as in the Shakespeare presets, fresh weights, train and test windows.
    spec = spec_from_name("gpt-shakespeare-small", name="gpt-bigram-test", input_shape=(CONTEXT,), embed_dim=32,
                          num_heads=2, num_layers=1, hidden=(64,))
    train, test = bigram_task(2_000, seed=1), bigram_task(500, seed=2)
    before = Evaluator(spec, test).evaluate(module_to_params(spec.build()))

    # Execute: 300 steps of minibatch SGD at the Shakespeare benchmark's learning rate.
    result = local_train(spec.build(), spec, train, steps=300, batch_size=32, lr=0.5, seed=0)
    after = Evaluator(spec, test).evaluate(result.params)

    # Assert: far above the 1/8 a model that ignores the last character gets, and the loss fell.
    assert after.accuracy > 0.9, (before, after)
    assert after.loss < before.loss / 2
