"""Local training (minibatch SGD on cross-entropy) and evaluation of a `ModelSpec` on a `Dataset`.

Determinism: on CPU, `local_train` with the same inputs and seed returns bit-identical params (with the same
torch build and thread count). Batches come from a local `torch.Generator` seeded with `seed`; the global torch
RNG is forked and seeded for the call and restored afterwards, and deterministic algorithms are switched on
for the call (warn-only) and switched back.

`Evaluator` holds one module and the dataset as device tensors, and evaluates any number of parameter sets
under `torch.no_grad`, without rebuilding modules: the aggregator measures loss before and after every update this
way. Each set is loaded by pointing the module's parameter slots at its tensors: the swap that
`torch.func.functional_call` makes, without its generic machinery and without putting the old tensors back (the
module is the Evaluator's own). The forward pass runs the same kernels on the same tensors, so the same bits, and
costs ~65 us less: 380 against 446 us on a 100k-parameter MLP over 179 digits, 1 thread (`Evaluator` against
`functional_call`, median of 7 runs of 200 passes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from flchain.ml.data import Dataset, LabelArray
from flchain.ml.errors import ParamsError, TrainError
from flchain.ml.params import ParamLayout, Params, ParamsLike, check_layout, load_into_module, module_to_params
from flchain.ml.specs import ModelSpec

logger = logging.getLogger(__name__)

DEFAULT_EVAL_BATCH_SIZE = 4096
VIEW_CACHE = 3
"""Buffers whose tensor views an `Evaluator` keeps (`aggregator.scoring` fills one while the other is evaluated; the
value walk rotates three)."""


@dataclass(frozen=True, eq=False)
class TrainResult:
    """`params`: the locally trained weights. `loss`: mean minibatch cross-entropy over all local steps;
    `last_loss`: the final step's. `num_samples`: size of the local dataset (the FedAvg weight)."""

    params: Params
    loss: float
    last_loss: float
    num_samples: int
    steps: int


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy and top-1 accuracy in [0, 1] over `num_samples` samples."""

    loss: float
    accuracy: float
    num_samples: int


def resolve_device(device: str = "auto") -> str:
    """Map "auto" to "cuda" when available, else "cpu". Other names are checked (e.g. "cuda:1" needs CUDA)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as e:
        raise TrainError(f"unknown device {device!r}") from e
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r} requested but CUDA is not available")
    return device


def _check_compatible(spec: ModelSpec, dataset: Dataset) -> None:
    if dataset.input_shape != spec.input_shape:
        raise TrainError(
            f"dataset {dataset.name} samples have shape {dataset.input_shape}, spec {spec.name} expects "
            f"{spec.input_shape} (Dataset.reshaped can convert equal-size shapes)"
        )
    if dataset.num_classes > spec.num_classes:
        raise TrainError(f"dataset {dataset.name} has {dataset.num_classes} classes, spec {spec.num_classes}")


def _params_of(model_or_params: nn.Module | ParamsLike) -> ParamsLike:
    return module_to_params(model_or_params) if isinstance(model_or_params, nn.Module) else model_or_params


def _fresh_model(spec: ModelSpec, params: ParamsLike, device: str) -> nn.Module:
    model = spec.build()
    load_into_module(model, params)
    return model.to(device)


@contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, forked global RNG and deterministic algorithms for the duration; both restored after."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def noisy_labels(y: npt.ArrayLike, num_classes: int, fraction: float, seed: int) -> LabelArray:
    """A copy of `y` with round(fraction * N) seeded-random positions replaced by uniformly random classes."""
    labels = np.array(y, dtype=np.int64, copy=True)
    if not 0.0 <= fraction <= 1.0:
        raise TrainError(f"label noise fraction must lie in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
    labels[chosen] = rng.integers(0, num_classes, size=len(chosen))
    return labels


def _batches(n_samples: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """`steps` index batches: consecutive chunks of seeded permutations, a fresh permutation per epoch."""
    size = min(batch_size, n_samples)
    order = torch.randperm(n_samples, generator=generator)
    position = 0
    for _ in range(steps):
        if position + size > n_samples:
            order, position = torch.randperm(n_samples, generator=generator), 0
        yield order[position : position + size]
        position += size


def _check_train_args(steps: int, batch_size: int, lr: float, momentum: float, n_samples: int) -> None:
    if steps < 1 or batch_size < 1:
        raise TrainError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if not (lr > 0 and math.isfinite(lr)) or not 0.0 <= momentum < 1.0:
        raise TrainError(f"need lr > 0 and momentum in [0, 1), got {lr}, {momentum}")
    if n_samples == 0:
        raise TrainError("cannot train on an empty dataset")


def local_train(
    model_or_params: nn.Module | ParamsLike,
    spec: ModelSpec,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    label_noise: float = 0.0,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> TrainResult:
    """`steps` steps of minibatch SGD from the given weights (a module is read, never modified).

    `label_noise` replaces that fraction of the local labels by random classes first (an honest-but-noisy
    client in simulations). The returned params are new float32 arrays on the CPU.
    """
    _check_compatible(spec, dataset)
    _check_train_args(steps, batch_size, lr, momentum, len(dataset))
    target = resolve_device(device)
    labels = noisy_labels(dataset.y, spec.num_classes, label_noise, seed) if label_noise > 0 else dataset.y
    with _deterministic(seed):
        model = _fresh_model(spec, _params_of(model_or_params), target).train()
        x_all = torch.tensor(dataset.x, device=target)
        y_all = torch.tensor(labels, device=target)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        loss_sum, last_loss = 0.0, math.nan
        for idx in _batches(len(dataset), batch_size, steps, generator):
            batch = idx.to(target)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_all[batch]), y_all[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                raise TrainError(f"training loss became {last_loss} (lr {lr} too large?)")
            loss_sum += last_loss
    logger.debug("local_train %s: %d steps, mean loss %.4f, last %.4f", spec.name, steps, loss_sum / steps, last_loss)
    return TrainResult(module_to_params(model), loss_sum / steps, last_loss, len(dataset), steps)


def _writable_f32(value: npt.ArrayLike) -> npt.NDArray[np.float32]:
    array = np.asarray(value, dtype=np.float32)
    return array if array.flags.writeable and array.flags.c_contiguous else np.array(array, order="C")


def _slot(model: nn.Module, name: str) -> tuple[dict[str, Any], str]:
    """The dict of `model`'s submodule that holds the state entry `name` (its parameters or buffers), and the key.

    Writing a tensor there is how `torch.func.functional_call` swaps it in; a module that caches its weights
    elsewhere (`nn.LSTM`'s flat weights) notices the new tensor at its next forward, as it does for that call."""
    owner, _, key = name.rpartition(".")
    module = model.get_submodule(owner)
    slots: dict[str, Any]
    for slots in (module._parameters, module._buffers):
        if key in slots:
            return slots, key
    raise ParamsError(f"the model has no parameter or buffer {name!r}")


class Evaluator:
    """Evaluates parameter sets of one spec on one dataset, reusing one module and the device-resident data."""

    def __init__(
        self, spec: ModelSpec, dataset: Dataset, *, batch_size: int = DEFAULT_EVAL_BATCH_SIZE, device: str = "cpu"
    ) -> None:
        _check_compatible(spec, dataset)
        if batch_size < 1 or len(dataset) == 0:
            raise TrainError("an Evaluator needs batch_size >= 1 and a non-empty dataset")
        self.spec = spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.num_samples = len(dataset)
        self._model = spec.build().to(self.device).eval()
        self.layout = ParamLayout.of(module_to_params(self._model))
        self._slots = tuple(_slot(self._model, name) for name in self.layout.names)
        self._x = torch.tensor(dataset.x, device=self.device)
        self._y = torch.tensor(dataset.y, device=self.device)
        self._on_cpu = torch.device(self.device).type == "cpu"
        self._views: list[tuple[npt.NDArray[np.floating], dict[str, torch.Tensor]]] = []
        """The last `VIEW_CACHE` vectors evaluated in place and torch's views of them (kept alive, so a vector's
        identity is its buffer): the scoring loop alternates between two buffers."""

    def _tensors(self, params: ParamsLike) -> dict[str, torch.Tensor]:
        check_layout(self.layout, params)
        return {n: torch.from_numpy(_writable_f32(params[n])).to(self.device) for n in self.layout.names}

    def evaluate(self, params: ParamsLike) -> EvalResult:
        """Mean loss and accuracy of `params` over the whole dataset."""
        return self._evaluate_tensors(self._tensors(params))

    def _load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Point the module's parameter slots at `tensors` (views or copies; nothing is copied here)."""
        for (slots, key), name in zip(self._slots, self.layout.names, strict=True):
            slots[key] = tensors[name]

    def _evaluate_tensors(self, tensors: dict[str, torch.Tensor], accuracy: bool = True) -> EvalResult:
        loss_sum, correct = 0.0, 0
        self._load(tensors)
        with torch.no_grad():
            for start in range(0, self.num_samples, self.batch_size):
                xb, yb = self._x[start : start + self.batch_size], self._y[start : start + self.batch_size]
                logits = self._model(xb)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                if accuracy:
                    correct += int((logits.argmax(dim=1) == yb).sum())
        acc = correct / self.num_samples if accuracy else math.nan
        return EvalResult(loss_sum / self.num_samples, acc, self.num_samples)

    def loss(self, params: ParamsLike) -> float:
        return self.evaluate(params).loss

    def _vector_tensors(self, vector: npt.ArrayLike) -> dict[str, torch.Tensor]:
        """Views of one flat tensor; a writable C-contiguous float32 vector is shared with torch, not copied."""
        flat = np.asarray(vector)
        if flat.ndim != 1 or flat.shape[0] != self.layout.total_size or not np.issubdtype(flat.dtype, np.floating):
            raise ParamsError(f"expected a 1-D float vector of {self.layout.total_size} elements, got {flat.shape}")
        array = _writable_f32(flat)
        shared = array is flat and self._on_cpu  # torch's tensors are views of `flat` itself
        if shared:
            for seen, cached in self._views:
                if seen is flat:
                    return cached  # the same buffer again (the scoring loop's): its views still read it
        whole = torch.from_numpy(array).to(self.device)
        views = {
            name: whole[start : start + size].view(shape)
            for name, shape, start, size in zip(
                self.layout.names, self.layout.shapes, self.layout.offsets, self.layout.sizes, strict=True
            )
        }
        self._views = [(flat, views), *self._views[: VIEW_CACHE - 1]] if shared else []
        return views

    def evaluate_vector(self, vector: npt.ArrayLike) -> EvalResult:
        """Evaluate a flat parameter vector laid out as `self.layout` (tensors are views of it, not copies, when
        it is a writable C-contiguous float32 array; another dtype is converted once)."""
        return self._evaluate_tensors(self._vector_tensors(vector))

    def loss_vector(self, vector: npt.ArrayLike) -> float:
        """Mean loss of a flat parameter vector, without the accuracy (the aggregator's scoring pass)."""
        return self._evaluate_tensors(self._vector_tensors(vector), accuracy=False).loss

    def evaluate_many(self, params_list: Sequence[ParamsLike]) -> list[EvalResult]:
        """`evaluate` for each parameter set, in order."""
        return [self.evaluate(p) for p in params_list]


def evaluate(
    model_or_params: nn.Module | ParamsLike,
    spec: ModelSpec,
    dataset: Dataset,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    device: str = "cpu",
) -> EvalResult:
    """One-off evaluation; for many parameter sets on the same data, keep an `Evaluator`."""
    return Evaluator(spec, dataset, batch_size=batch_size, device=device).evaluate(_params_of(model_or_params))


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block with `num_threads` intra-op CPU threads, restoring the previous count after.

    Small models (the digits presets) run fastest on one thread, and one thread per process avoids the severe
    slow-down of spinning OpenMP workers when several processes share a few cores.
    """
    if num_threads < 1:
        raise TrainError(f"num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
