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
from trainer.errors import ModelSpecMismatch

logger = logging.getLogger(__name__)
MAX_TASK_CARD_BYTES = 1024 * 1024


def resolve_model_spec(choice: str | None, on_chain_hash: bytes, card: TaskCard | None = None) -> ModelSpec:
    """The task's model spec; ModelSpecMismatch when the chosen one does not hash to `on_chain_hash`."""
    if choice is not None:
        spec = _load_choice(choice)
        if spec.spec_hash() != on_chain_hash:
            raise ModelSpecMismatch(
                f"spec {spec.name} hashes to 0x{spec.spec_hash().hex()}, the task's is 0x{on_chain_hash.hex()}"
            )
        return spec
    if card is not None:
        try:
            spec = card.spec(expected_hash=on_chain_hash)
        except (TaskCardError, SpecError) as e:
            raise ModelSpecMismatch(f"the task card's spec is unusable: {e}") from e
        logger.info("event=model_spec source=task_card spec=%s", spec.name)
        return spec
    for spec in PRESETS.values():
        if spec.spec_hash() == on_chain_hash:
            logger.info("event=model_spec source=preset spec=%s", spec.name)
            return spec
    raise ModelSpecMismatch(f"no known spec hashes to 0x{on_chain_hash.hex()}; pass --model-spec with the spec JSON")


def fetch_task_card(storage: Storage, card_cid: str | None) -> TaskCard | None:
    """The task card at `card_cid`, or None (with a warning) when there is none or it cannot be read."""
    if not card_cid:
        return None
    try:
        return TaskCard.from_bytes(storage.cat(card_cid, max_bytes=MAX_TASK_CARD_BYTES))
    except (StorageError, TaskCardError) as e:
        logger.warning("event=task_card_unreadable cid=%s error=%s", card_cid, e)
        return None


def _load_choice(choice: str) -> ModelSpec:
    if choice in PRESETS:
        return spec_from_name(choice)
    path = Path(choice)
    try:
        return ModelSpec.from_json(path.read_bytes())
    except OSError as e:
        raise ModelSpecMismatch(f"{choice!r} is neither a preset name nor a readable spec JSON file: {e}") from e
    except SpecError as e:
        raise ModelSpecMismatch(f"spec file {path} is invalid: {e}") from e
