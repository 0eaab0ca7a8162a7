"""Layers for the sequence and signal presets: a 1-D CNN, a character LSTM and a small character transformer.

- `cnn1d_layers`: Conv1d blocks (same padding, ReLU, 2x max-pool) then dense layers, for 1-D signals such as
  MNIST-1D (Greydanus and Kobak 2024, "Scaling Down Deep Learning with MNIST-1D").
- `CharLSTM`: the next-character model of McMahan et al. 2017 for Shakespeare -- an 8-dim character embedding,
  two LSTM layers of 256 units, a dense layer to the vocabulary, reading the last position.
- `CharTransformer`: a decoder-only, GPT-style model (Radford et al. 2018/2019): token and learned position
  embeddings, pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP, a final LayerNorm and a
  dense head. It reads the logits at the last position: a window of characters predicts the next one.

Character models take token ids as float tensors (the platform's datasets are float32) and cast them; ids outside
[0, vocab) are clamped so hostile evaluation data cannot index outside the embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMBEDDING_STD = 1.0  # see init_weights


def token_ids(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Float token ids as int64 in [0, vocab_size)."""
    return x.long().clamp_(0, vocab_size - 1)


class CharLSTM(nn.Module):
    """Embedding, a multi-layer LSTM, and a Linear head on the last position's output."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, num_layers: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim, device="meta")
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=num_layers, batch_first=True, device="meta")
        self.head = nn.Linear(hidden, vocab_size, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embed(token_ids(x, self.vocab_size)))
        return self.head(states[:, -1, :])  # type: ignore[no-any-return]


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, device="meta")
        self.proj = nn.Linear(dim, dim, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))  # type: ignore[no-any-return]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, device="meta")
        self.attn = CausalSelfAttention(dim, num_heads)
        self.ln2 = nn.LayerNorm(dim, device="meta")
        self.ff_in = nn.Linear(dim, ff_dim, device="meta")
        self.ff_out = nn.Linear(ff_dim, dim, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ff_out(F.gelu(self.ff_in(self.ln2(x))))  # type: ignore[no-any-return]


class CharTransformer(nn.Module):
    """Decoder-only character model over windows of `context` tokens; logits of the next token."""

    def __init__(self, vocab_size: int, context: int, dim: int, num_heads: int, num_layers: int, ff_dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.tok = nn.Embedding(vocab_size, dim, device="meta")
        self.pos = nn.Embedding(context, dim, device="meta")
        self.blocks = nn.ModuleList(Block(dim, num_heads, ff_dim) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(dim, device="meta")
        self.head = nn.Linear(dim, vocab_size, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = token_ids(x, self.vocab_size)
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.tok(ids) + self.pos(positions)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h[:, -1, :]))  # type: ignore[no-any-return]


def cnn1d_layers(
    in_channels: int, channels: tuple[int, ...], kernel_size: int
) -> list[tuple[str, nn.Module]]:
    """Conv1d (same padding) + ReLU + MaxPool1d(2) per entry of `channels`, then Flatten."""
    layers: list[tuple[str, nn.Module]] = []
    in_ch = in_channels
    for i, out_ch in enumerate(channels):
        conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, device="meta")
        layers += [(f"conv{i}", conv), (f"relu_conv{i}", nn.ReLU()), (f"pool{i}", nn.MaxPool1d(2))]
        in_ch = out_ch
    layers.append(("flatten", nn.Flatten()))
    return layers


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Every parameter from `generator`, module by module in registration order:
    Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default distribution); Embedding: N(0, 1)
    (PyTorch's default); LayerNorm: ones and zeros; LSTM: U(-1/sqrt(hidden), 1/sqrt(hidden)) (PyTorch's default).

    Embeddings are N(0, 1), not GPT-2's N(0, 0.02^2): trainers run plain SGD, and behind a LayerNorm a residual
    stream of scale 0.02 is amplified ~50x in the backward pass, so any learning rate that moves the embeddings
    makes the rest diverge (lr >= 1) or leaves the model at the unigram plateau (lr 0.5: 17 % next-character
    accuracy after 500 steps of gpt-shakespeare-small, against 30 % with N(0, 1))."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            bound = 1.0 / float(module.weight[0].numel()) ** 0.5
            module.weight.uniform_(-bound, bound, generator=generator)
            if module.bias is not None:
                module.bias.uniform_(-bound, bound, generator=generator)
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, EMBEDDING_STD, generator=generator)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.fill_(0.0)
        elif isinstance(module, nn.LSTM):
            bound = 1.0 / float(module.hidden_size) ** 0.5
            for _, weight in sorted(module.named_parameters()):
                weight.uniform_(-bound, bound, generator=generator)
