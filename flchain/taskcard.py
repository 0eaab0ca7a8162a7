"""The task card: what a data owner needs to join a task, published on IPFS, its CID stored in the task.

It carries the model spec (whose SHA-256 is the task's on-chain modelSpecHash, so a card cannot lie about it),
the dataset the task expects and free-form notes. Trainers and aggregators load the spec from here.
A private task also lists its readers (`readers`: the X25519 public keys every update is sealed for, docs/privacy.md);
a card without readers serializes exactly as before the field existed, so its CID is unchanged.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from flchain.ml.specs import ModelSpec
from flchain.privacy.dp import DpConfig
from flchain.privacy.errors import ReaderKeyError
from flchain.privacy.keys import parse_public_key
from flchain.report import canonical_json

CARD_FORMAT: Final = "flchain-task-card/1"


class TaskCardError(ValueError):
    """The task card is malformed or does not match the task's model spec hash."""


class ReaderEntry(BaseModel):
    """One reader of the task's updates: who it is and its X25519 public key (0x-hex of 32 raw bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    role: Literal["aggregator", "validator"]
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            return "0x" + parse_public_key(value).hex()
        except ReaderKeyError as e:
            raise ValueError(str(e)) from e

    @property
    def public_bytes(self) -> bytes:
        return parse_public_key(self.public_key)


class TaskCard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["flchain-task-card/1"] = CARD_FORMAT
    title: str
    model_spec: str  # ModelSpec canonical JSON
    dataset: str  # e.g. "digits" (scikit-learn's 8x8 digits) or "mnist"
    notes: str = ""
    readers: tuple[ReaderEntry, ...] = ()  # empty: updates travel in the clear
    dp: DpConfig | None = None  # differential privacy (central needs readers: its noise seed comes from them)

    @field_validator("readers")
    @classmethod
    def _distinct(cls, value: tuple[ReaderEntry, ...]) -> tuple[ReaderEntry, ...]:
        if len({r.public_key for r in value}) != len(value):
            raise ValueError("a reader key is listed twice")
        return value

    @model_validator(mode="after")
    def _central_needs_readers(self) -> TaskCard:
        if self.dp is not None and self.dp.mode == "central" and not self.readers:
            raise ValueError("central differential privacy needs a private task (readers)")
        return self

    @classmethod
    def for_spec(
        cls, spec: ModelSpec, *, title: str, dataset: str, notes: str = "", readers: tuple[ReaderEntry, ...] = (),
        dp: DpConfig | None = None,
    ) -> TaskCard:
        return cls(
            title=title, model_spec=spec.to_json().decode(), dataset=dataset, notes=notes, readers=readers, dp=dp
        )

    @property
    def reader_keys(self) -> tuple[bytes, ...]:
        """The raw public keys every update of the task is sealed for (empty: clear-text task)."""
        return tuple(r.public_bytes for r in self.readers)

    def spec(self, expected_hash: bytes | None = None) -> ModelSpec:
        """The model spec, checked against the on-chain hash when given."""
        spec = ModelSpec.from_json(self.model_spec)
        if expected_hash is not None and spec.spec_hash() != expected_hash:
            raise TaskCardError(
                f"task card spec hashes to 0x{spec.spec_hash().hex()}, the task commits to 0x{expected_hash.hex()}"
            )
        return spec

    def to_bytes(self) -> bytes:
        fields = self.model_dump(mode="json")
        for key in ("readers", "dp"):
            if not fields[key]:
                del fields[key]
        return canonical_json(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskCard:
        try:
            return cls.model_validate_json(data)
        except ValueError as e:
            raise TaskCardError(f"malformed task card: {e}") from e
