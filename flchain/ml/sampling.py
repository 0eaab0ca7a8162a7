"""A line of text from a character model: the language task's human-readable progress signal.

`sample_line` continues a fixed prompt one character at a time, drawing each next character from the model's
softmax with a `torch.Generator` seeded by `seed`, always on the CPU: the same weights give the same line in
the aggregator and in `verify`, on any machine with the same torch build.
"""

from __future__ import annotations

import torch

from flchain.ml import shakespeare
from flchain.ml.params import ParamsLike, load_into_module
from flchain.ml.specs import CHAR_ARCHS, ModelSpec

SAMPLE_PROMPT = "To be, or not to be, that is the question: "
SAMPLE_CHARS = 60
SAMPLE_SEED = 0


def is_character_model(spec: ModelSpec) -> bool:
    return spec.arch in CHAR_ARCHS and spec.num_classes == shakespeare.VOCAB_SIZE


def sample_line(
    spec: ModelSpec, params: ParamsLike, *, prompt: str = SAMPLE_PROMPT, length: int = SAMPLE_CHARS,
    seed: int = SAMPLE_SEED,
) -> str:
    """`length` characters sampled after `prompt` (left-padded with spaces, or cut, to the model's window)."""
    window = spec.input_shape[0]
    model = spec.build()
    load_into_module(model, params)
    model.eval()
    ids = shakespeare.encode_text(prompt.rjust(window)[-window:]).tolist()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    produced: list[int] = []
    with torch.no_grad():
        for _ in range(length):
            x = torch.tensor([ids[-window:]], dtype=torch.float32)
            probs = torch.softmax(model(x)[0].double(), dim=0)
            produced.append(int(torch.multinomial(probs, 1, generator=generator)))
            ids.append(produced[-1])
    return shakespeare.decode_ids(produced)
