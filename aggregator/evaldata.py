"""The sponsor's held-out validation data and each round's evaluation batch.

Validation data never goes to trainers. By default it is the held-out part of scikit-learn's digits: the
`val` and `test` parts of `train_val_test_split(load_digits(), (0.8, 0.1, 0.1), seed=0)` (359 samples); trainers
train on the `train` part. MNIST-1D's held-out part is the generator's 1,000 test signals; Shakespeare's is the
windows (every `text_stride`-th) of the held-out speaking roles. Any `.npz`/`.csv` file can be used instead.

Round `r`'s evaluation batch is drawn from it without replacement with a seed from `(task, r, salt)`
(`eval_seed`). The salt is `eval_salt(secret, task, r)`, an HMAC under a secret only the aggregator holds (the
service derives it from its signing key), so nobody can tell before the updates are in which samples will judge
them; the batch itself, with the salt in its metadata, is bound at `openRound` by the commitment and revealed
at finalization, so anyone holding the validation data can draw it again afterwards (`redraw_eval_batch`, a check
of `flchain verify round`) without the secret.

Which validation data trainers cannot derive. The digits held-out part and MNIST-1D's 1,000 test signals are
public (scikit-learn ships the digits; the mnist1d generator's default seed 42 rebuilds its test signals): a
trainer can compute them and fit its update to them, whatever the salt. Data nobody can derive is a sponsor's
private file (`file`) or `mnist1d-secret`: 1,000 signals of the mnist1d generator run with a seed derived from a
secret the sponsor gives only to the aggregator and validators (hex, in the environment variable
`FLCHAIN_VALIDATION_SECRET`, never in the task card): the same distribution as the trainers' data, but samples
that are not in it and cannot be generated without the secret. Anyone verifying a round with it needs the secret.
Even a secret pool is revealed bit by bit: every finalized round publishes its batch, later rounds draw from
the same pool, and a trainer that trains on the revealed batches fits part of the test it is judged on next
(measured on MNIST-1D in the bench: such a trainer is paid 1.35-1.40x an honest account when every round reuses
the batch, 1.07-1.23x when no sample judges twice). `mnist1d-fresh` closes that: round `r`'s batch is
`eval_batch_size` signals generated for that round alone, with a seed from `(secret, task, r)`
(`fresh_round_seed`), so a revealed batch never judges again; the report's whole-set metrics still use the
1,000 `mnist1d-secret` signals. The batch is then drawn from this round's pool exactly as from a fixed one.
A round's batch is encoded as safetensors (`x` float32, `y` int64, one metadata key), and committed at `openRound`
as keccak256 of its CID; it is put on IPFS only at finalization. The loss scores of the round are forward passes
on this batch (`batch_loss_fn`); the report's validation metrics are forward passes on the whole validation set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load, save

from flchain.codec.errors import CodecError
from flchain.codec.frame import parse_frame
from flchain.codec.header import CodecLimits
from flchain.ml import shakespeare
from flchain.ml.data import Dataset, digits_split, load_arrays
from flchain.ml.errors import DataError
from flchain.ml.mnist1d_data import mnist1d_heldout, mnist1d_signals
from flchain.ml.sampling import is_character_model, sample_line
from flchain.ml.specs import ModelSpec
from flchain.ml.train import Evaluator
from flchain.report import ModelMetrics, canonical_json

EVAL_FORMAT = "flchain-eval-batch/1"
METADATA_KEY = "flchain.eval-batch"
_SEED_DOMAIN = b"flchain-eval-batch-seed/1"
_SALT_DOMAIN = b"flchain-eval-batch-salt/1"
_LIMITS = CodecLimits(max_payload_bytes=512 * 1024 * 1024, max_tensors=2, max_header_bytes=64 * 1024)


class EvalDataError(ValueError):
    """Validation data or an evaluation batch that cannot be used for the task's model."""


class ValidationSource(StrEnum):
    DIGITS = "digits"  # the held-out part of scikit-learn's digits (default)
    FILE = "file"  # a .npz (arrays x, y) or .csv (label last) file
    MNIST1D = "mnist1d"  # MNIST-1D's generated test signals (public: the generator's default seed)
    MNIST1D_SECRET = "mnist1d-secret"  # MNIST-1D signals generated with a seed from FLCHAIN_VALIDATION_SECRET
    MNIST1D_FRESH = "mnist1d-fresh"  # as mnist1d-secret, but every round's batch is new signals (module docstring)
    SHAKESPEARE = "shakespeare"  # windows of the held-out speaking roles


DEFAULT_TEXT_STRIDE = 64
VALIDATION_SECRET_ENV = "FLCHAIN_VALIDATION_SECRET"
_GENERATOR_DOMAIN = b"flchain-validation-generator-seed/1"
_FRESH_DOMAIN = b"flchain-fresh-eval-seed/1"
MIN_SECRET_BYTES = 16


def validation_secret() -> bytes:
    """The sponsor's validation secret from `FLCHAIN_VALIDATION_SECRET` (hex, >= 16 bytes)."""
    raw = os.environ.get(VALIDATION_SECRET_ENV, "")
    try:
        secret = bytes.fromhex(raw.removeprefix("0x"))
    except ValueError as e:
        raise EvalDataError(f"{VALIDATION_SECRET_ENV} must be hex") from e
    if len(secret) < MIN_SECRET_BYTES:
        raise EvalDataError(f"validation 'mnist1d-secret' and 'mnist1d-fresh' need {VALIDATION_SECRET_ENV}: hex, "
                            f">= {MIN_SECRET_BYTES} bytes")
    return secret


def generator_seed(secret: bytes) -> int:
    """The mnist1d generator's seed: 4 bytes of HMAC-SHA256 under the secret (numpy seeds are < 2^32)."""
    return int.from_bytes(hmac.new(secret, _GENERATOR_DOMAIN, hashlib.sha256).digest()[:4], "big")


def mnist1d_secret_heldout(secret: bytes) -> Dataset:
    """1,000 MNIST-1D signals (the generator's test part) made with `generator_seed(secret)`, not the public 42."""
    return _signals(generator_seed(secret), 1000, "mnist1d-secret-heldout")


def fresh_round_seed(secret: bytes, task_id: int, round_id: int) -> int:
    """The generator seed of round `round_id`'s fresh signals: 4 bytes of HMAC-SHA256 under the secret."""
    message = _FRESH_DOMAIN + task_id.to_bytes(32, "big") + round_id.to_bytes(32, "big")
    return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest()[:4], "big")


def _signals(seed: int, count: int, name: str) -> Dataset:
    try:
        return mnist1d_signals(seed, count, name)
    except DataError as e:
        raise EvalDataError(str(e)) from e


EvalPool = Callable[[int, int, int], Dataset]
"""`(task_id, round_id, size) -> the samples round `round_id`'s evaluation batch of `size` is drawn from`."""


def fixed_pool(validation: Dataset) -> EvalPool:
    """Every round draws from the same validation data."""
    return lambda task_id, round_id, size: validation


def fresh_mnist1d_pool(secret: bytes, spec: ModelSpec) -> EvalPool:
    """Round `r` draws from `size` signals generated for `(secret, task, r)` alone (`mnist1d-fresh`)."""

    def pool(task_id: int, round_id: int, size: int) -> Dataset:
        name = f"mnist1d-fresh-t{task_id}-r{round_id}"
        return _fitted(_signals(fresh_round_seed(secret, task_id, round_id), size, name), spec)

    return pool


def digits_heldout() -> Dataset:
    """The held-out digits (val + test of the seeded 80/10/10 split); trainers use the train part."""
    split = digits_split()
    digits = split.train
    x = np.concatenate([split.val.x, split.test.x])
    y = np.concatenate([split.val.y, split.test.y])
    return Dataset(x, y, "digits-heldout", digits.input_shape, digits.num_classes)


def _heldout_roles(spec: ModelSpec, text_stride: int) -> Dataset:
    if len(spec.input_shape) != 1:
        raise EvalDataError(f"spec {spec.name} does not read character windows")
    try:
        roles = shakespeare.default_role_split().heldout
        return shakespeare.roles_dataset(roles, spec.input_shape[0], text_stride, "shakespeare-heldout")
    except DataError as e:
        raise EvalDataError(str(e)) from e


def load_validation(
    source: ValidationSource, path: Path | None, spec: ModelSpec, *, text_stride: int = DEFAULT_TEXT_STRIDE
) -> Dataset:
    """The validation data, shaped for `spec`'s input."""
    if source is ValidationSource.SHAKESPEARE:
        dataset = _heldout_roles(spec, text_stride)
    elif source is ValidationSource.MNIST1D:
        dataset = mnist1d_heldout()
    elif source in (ValidationSource.MNIST1D_SECRET, ValidationSource.MNIST1D_FRESH):
        dataset = mnist1d_secret_heldout(validation_secret())
    elif source is ValidationSource.DIGITS:
        dataset = digits_heldout()
    elif path is None:
        raise EvalDataError("validation source 'file' needs a path")
    else:
        dataset = load_arrays(path, num_classes=spec.num_classes)
    return _fitted(dataset, spec)


def _fitted(dataset: Dataset, spec: ModelSpec) -> Dataset:
    """`dataset` shaped for `spec`'s input, checked to be usable by it."""
    if dataset.input_shape != spec.input_shape:
        try:
            dataset = dataset.reshaped(spec.input_shape)
        except (ValueError, DataError) as e:
            raise EvalDataError(
                f"validation data {dataset.name} has samples of shape {dataset.input_shape}, the task's model "
                f"{spec.name} takes {spec.input_shape}: choose the validation source of the task's dataset "
                "(its task card names it)") from e
    if len(dataset) == 0 or dataset.num_classes > spec.num_classes:
        raise EvalDataError(f"validation data {dataset.name} is empty or has more classes than the model")
    return dataset


def eval_pool(source: ValidationSource, validation: Dataset, spec: ModelSpec) -> EvalPool:
    """Where each round's batch is drawn from: `validation` itself, or fresh signals for `mnist1d-fresh`."""
    if source is ValidationSource.MNIST1D_FRESH:
        return fresh_mnist1d_pool(validation_secret(), spec)
    return fixed_pool(validation)


def eval_salt(secret: bytes, task_id: int, round_id: int) -> bytes:
    """HMAC-SHA256 under the aggregator's `secret` of a domain tag, task and round (empty secret: no salt)."""
    if not secret:
        return b""
    message = _SALT_DOMAIN + task_id.to_bytes(32, "big") + round_id.to_bytes(32, "big")
    return hmac.new(secret, message, hashlib.sha256).digest()


def eval_seed(task_id: int, round_id: int, salt: bytes = b"") -> int:
    """The seed of round `round_id`'s evaluation batch: 8 bytes of SHA-256 over a domain tag, task, round, salt."""
    message = _SEED_DOMAIN + task_id.to_bytes(32, "big") + round_id.to_bytes(32, "big") + salt
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big")


def draw_eval_batch(validation: Dataset, task_id: int, round_id: int, size: int, salt: bytes = b"") -> Dataset:
    """`min(size, N)` validation samples without replacement, in index order, seeded by `(task, round, salt)`."""
    if size < 1:
        raise EvalDataError(f"evaluation batch size must be >= 1, got {size}")
    rng = np.random.default_rng(eval_seed(task_id, round_id, salt))
    chosen = np.sort(rng.choice(len(validation), size=min(size, len(validation)), replace=False))
    return validation.subset(chosen, name=f"eval-t{task_id}-r{round_id}")


def encode_eval_batch(batch: Dataset, task_id: int, round_id: int, salt: bytes = b"") -> bytes:
    """The batch as safetensors; its metadata carries the salt it was drawn with (hidden until the reveal)."""
    doc = {"format": EVAL_FORMAT, "task_id": task_id, "round": round_id, "num_classes": batch.num_classes,
           "salt": "0x" + salt.hex()}
    tensors: dict[str, np.ndarray] = {"x": np.ascontiguousarray(batch.x), "y": np.ascontiguousarray(batch.y)}
    return bytes(save(tensors, metadata={METADATA_KEY: canonical_json(doc).decode()}))


def decode_eval_batch(data: bytes, spec: ModelSpec) -> Dataset:
    """A revealed evaluation batch, checked strictly against the model spec."""
    try:
        frame = parse_frame(data, _LIMITS)
        doc = json.loads(frame.metadata[METADATA_KEY])
        dtypes = {name: entry.dtype for name, entry in frame.entries.items()}
        if dtypes != {"x": "F32", "y": "I64"} or doc.get("format") != EVAL_FORMAT:
            raise EvalDataError(f"not an evaluation batch: entries {dtypes}, format {doc.get('format')!r}")
        arrays = load(data)
    except (CodecError, SafetensorError, KeyError, json.JSONDecodeError, AttributeError) as e:
        raise EvalDataError(f"not an evaluation batch: {e!r}") from e
    x, y = arrays["x"], arrays["y"]
    if x.shape[1:] != spec.input_shape or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise EvalDataError(f"evaluation batch shapes x {x.shape}, y {y.shape} do not fit {spec.input_shape}")
    try:
        return Dataset(x, y, "eval-batch", spec.input_shape, spec.num_classes)
    except ValueError as e:
        raise EvalDataError(f"invalid evaluation batch: {e}") from e


def eval_batch_salt(data: bytes) -> bytes:
    """The salt a revealed evaluation batch says it was drawn with (empty for an unsalted batch)."""
    try:
        doc = json.loads(parse_frame(data, _LIMITS).metadata[METADATA_KEY])
        return bytes.fromhex(str(doc.get("salt", "0x")).removeprefix("0x"))
    except (CodecError, KeyError, ValueError, AttributeError) as e:
        raise EvalDataError(f"no readable salt in the evaluation batch: {e!r}") from e


def redraw_eval_batch(pool: EvalPool, data: bytes, spec: ModelSpec, task_id: int, round_id: int) -> bytes:
    """The evaluation batch drawn again from the round's pool with the salt and size the revealed `data` carries:
    equal to `data` exactly when the aggregator drew it as `draw_eval_batch` says (no hand-picked samples)."""
    size = len(decode_eval_batch(data, spec))
    salt = eval_batch_salt(data)
    batch = draw_eval_batch(pool(task_id, round_id, size), task_id, round_id, size, salt)
    return encode_eval_batch(batch, task_id, round_id, salt)


def batch_loss_fn(evaluator: Evaluator) -> Callable[[NDArray[np.float64]], float]:
    """`loss_fn` for the pipeline: mean cross-entropy of a flat parameter vector on the evaluator's data."""

    def loss(vector: NDArray[np.float64]) -> float:
        return evaluator.loss_vector(np.asarray(vector, dtype=np.float32))

    return loss


def validation_metrics(evaluator: Evaluator, before: NDArray[np.floating], after: NDArray[np.floating]) -> ModelMetrics:
    """Loss and accuracy of the base and the new model on the whole validation set; for a character model also
    a line of text sampled from the new model (perplexity is exp(loss))."""
    first = evaluator.evaluate_vector(np.asarray(before, dtype=np.float32))
    new_params = np.asarray(after, dtype=np.float32)
    second = evaluator.evaluate_vector(new_params)
    text = None
    if is_character_model(evaluator.spec):
        text = sample_line(evaluator.spec, evaluator.layout.unflatten(new_params))
    return ModelMetrics(
        val_loss_before=first.loss, val_accuracy_before=first.accuracy,
        val_loss_after=second.loss, val_accuracy_after=second.accuracy, eval_samples=first.num_samples,
        sample_text=text,
    )


def set_torch_threads(threads: int) -> None:
    """Fix the CPU thread count: forward passes must give the same floats in the aggregator and in `verify`."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
