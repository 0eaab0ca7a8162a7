"""Which model spec the task trains, always checked against the task's on-chain model spec hash.

In order: the spec the settings name (a preset name or a spec JSON file), the task card's spec (its CID is in
the TaskCreated event), or the preset whose hash is the on-chain one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flchain.ml.errors import SpecError
from flchain.ml.specs import PRESETS, ModelSpec, spec_from_name
from flchain.storage.errors import StorageError
from flchain.storage.protocol import Storage
from flchain.taskcard import TaskCard, TaskCardError

logger = logging.getLogger(__name__)
MAX_TASK_CARD_BYTES = 1024 * 1024


class SpecMismatch(ValueError):
    """No usable model spec hashes to the task's on-chain model spec hash."""


def _load_choice(choice: str) -> ModelSpec:
    if choice in PRESETS:
        return spec_from_name(choice)
    try:
        return ModelSpec.from_json(Path(choice).read_bytes())
    except (OSError, SpecError) as e:
        raise SpecMismatch(f"{choice!r} is neither a preset name nor a valid spec JSON file: {e}") from e


def load_task_card(storage: Storage, card_cid: str) -> TaskCard | None:
    """The task card, or None (logged) when there is none or it cannot be fetched or parsed."""
    if not card_cid:
        return None
    try:
        return TaskCard.from_bytes(storage.cat(card_cid, max_bytes=MAX_TASK_CARD_BYTES))
    except (StorageError, TaskCardError) as e:
        logger.warning("task card %s unusable: %s", card_cid, e)
        return None


def _from_card(storage: Storage, card_cid: str, on_chain_hash: bytes) -> ModelSpec | None:
    try:
        card = TaskCard.from_bytes(storage.cat(card_cid, max_bytes=MAX_TASK_CARD_BYTES))
        return card.spec(expected_hash=on_chain_hash)
    except (StorageError, TaskCardError, SpecError) as e:
        logger.warning("task card %s unusable: %s", card_cid, e)
        return None


def resolve_spec(choice: str | None, on_chain_hash: bytes, storage: Storage, card_cid: str = "") -> ModelSpec:
    """The task's model spec (see the module docstring); SpecMismatch if none fits the on-chain hash."""
    if choice is not None:
        spec = _load_choice(choice)
        if spec.spec_hash() != on_chain_hash:
            raise SpecMismatch(f"spec {spec.name} hashes to 0x{spec.spec_hash().hex()}, task: 0x{on_chain_hash.hex()}")
        return spec
    if card_cid:
        spec_or_none = _from_card(storage, card_cid, on_chain_hash)
        if spec_or_none is not None:
            return spec_or_none
    for preset in PRESETS.values():
        if preset.spec_hash() == on_chain_hash:
            return preset
    raise SpecMismatch(f"no known spec hashes to 0x{on_chain_hash.hex()}; set model_spec to the spec JSON")
