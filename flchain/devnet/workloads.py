"""The workloads a local stack can run: which model, which trainer data and which held-out validation data.

- digits: scikit-learn's 8x8 digits and the small MLP (the default).
- mnist1d: MNIST-1D's generated signals (Greydanus and Kobak 2024) and the 1-D CNN, local lr 0.2 (the
  benchmark's: the CNN needs ~1,000 sequential SGD steps at it).
- shakespeare: next-character prediction with trainers holding whole speaking roles (LEAF, Caldas et al. 2018)
  and the small GPT-style character transformer at local lr 0.5 (1.0 diverges under plain SGD); windows every 32
  characters for trainers and every 256 for the sponsor's held-out roles keep rounds short on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WorkloadName(StrEnum):
    DIGITS = "digits"
    MNIST1D = "mnist1d"
    SHAKESPEARE = "shakespeare"


@dataclass(frozen=True)
class Workload:
    """`trainer_env` and `aggregator_env` are settings without their FLCHAIN_TRAINER_/FLCHAIN_AGGREGATOR_ prefix."""

    name: WorkloadName
    model: str
    trainer_env: tuple[tuple[str, str], ...]
    aggregator_env: tuple[tuple[str, str], ...]
    language: bool = False


WORKLOADS: dict[WorkloadName, Workload] = {
    WorkloadName.DIGITS: Workload(WorkloadName.DIGITS, "mlp-digits", (("DATA_SOURCE", "digits"),),
                                  (("VALIDATION", "digits"),)),
    WorkloadName.MNIST1D: Workload(WorkloadName.MNIST1D, "cnn1d-mnist1d", (("DATA_SOURCE", "mnist1d"), ("LR", "0.2")),
                                   (("VALIDATION", "mnist1d"),)),
    WorkloadName.SHAKESPEARE: Workload(
        WorkloadName.SHAKESPEARE, "gpt-shakespeare-small",
        (("DATA_SOURCE", "shakespeare"), ("TEXT_STRIDE", "32"), ("LR", "0.5")),
        (("VALIDATION", "shakespeare"), ("TEXT_STRIDE", "256")), language=True,
    ),
}


def prefixed(pairs: tuple[tuple[str, str], ...], prefix: str) -> dict[str, str]:
    return {f"{prefix}{key}": value for key, value in pairs}
