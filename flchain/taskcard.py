"""The task card: what a data owner needs to join a task, published on IPFS, its CID stored in the task.

It carries the model spec (whose SHA-256 is the task's on-chain modelSpecHash, so a card cannot lie about it),
the dataset the task expects and free-form notes. Trainers and aggregators load the spec from here.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from flchain.ml.specs import ModelSpec
from flchain.report import canonical_json

CARD_FORMAT: Final = "flchain-task-card/1"


class TaskCardError(ValueError):
    """The task card is malformed or does not match the task's model spec hash."""


class TaskCard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["flchain-task-card/1"] = CARD_FORMAT
    title: str
    model_spec: str  # ModelSpec canonical JSON
    dataset: str  # e.g. "digits" (scikit-learn's 8x8 digits) or "mnist"
    notes: str = ""

    @classmethod
    def for_spec(cls, spec: ModelSpec, *, title: str, dataset: str, notes: str = "") -> TaskCard:
        return cls(title=title, model_spec=spec.to_json().decode(), dataset=dataset, notes=notes)

    def spec(self, expected_hash: bytes | None = None) -> ModelSpec:
        """The model spec, checked against the on-chain hash when given."""
        spec = ModelSpec.from_json(self.model_spec)
        if expected_hash is not None and spec.spec_hash() != expected_hash:
            raise TaskCardError(
                f"task card spec hashes to 0x{spec.spec_hash().hex()}, the task commits to 0x{expected_hash.hex()}"
            )
        return spec

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskCard:
        try:
            return cls.model_validate_json(data)
        except ValueError as e:
            raise TaskCardError(f"malformed task card: {e}") from e
