"""The aggregation step of a task with central differential privacy: DP-FedAvg instead of the robust rule.

McMahan et al., ICLR 2018 (`flchain.privacy.dp.dp_fedavg`): the filtered updates are clipped, summed, divided by the
task's fixed expected trainer count and noised. The noise must be unknown to everyone but the readers (whoever knows
it can subtract it) and the same for every reader (so `flchain verify round` rebuilds the model byte for byte):
its seed is SHA-256 over the round and the content keys of the aggregated envelopes — fresh random keys each trainer
drew and only the readers can unwrap, so no non-reader and no trainer (who knows only its own) can compute it, and
the aggregator cannot choose it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from aggregator.rules import AggregationResult, CenteredClipState
from aggregator.rules.common import read_only
from flchain.privacy.dp import DpConfig, dp_fedavg
from flchain.privacy.errors import DpConfigError

NOISE_SEED_LABEL: Final = b"flchain-dp-noise/1"


def noise_seed(task_id: int, round_id: int, content_keys: Sequence[bytes]) -> bytes:
    """The round's noise seed from the aggregated updates' content keys (in aggregation order)."""
    if any(len(key) != 32 for key in content_keys):
        raise DpConfigError("central DP needs every aggregated update sealed: a content key is missing")
    digest = hashlib.sha256(NOISE_SEED_LABEL + task_id.to_bytes(32, "big") + round_id.to_bytes(32, "big"))
    for key in content_keys:
        digest.update(key)
    return digest.digest()


class RoundIds(Protocol):
    @property
    def task_id(self) -> int: ...

    @property
    def round_id(self) -> int: ...

    @property
    def state(self) -> CarriedState: ...


class CarriedState(Protocol):
    @property
    def clip(self) -> CenteredClipState: ...


def dp_aggregate(
    rows: NDArray[np.float64], content_keys: Sequence[bytes], config: DpConfig, inputs: RoundIds
) -> AggregationResult:
    """The noised DP-FedAvg aggregate of `rows` `(n, d)` whose envelopes had `content_keys`, in round `inputs`;
    the robust rules' carried state passes through unchanged."""
    seed = noise_seed(inputs.task_id, inputs.round_id, content_keys)
    aggregate, _ = dp_fedavg(rows, config, np.random.default_rng(int.from_bytes(seed, "big")))
    return AggregationResult(read_only(aggregate), inputs.state.clip)
