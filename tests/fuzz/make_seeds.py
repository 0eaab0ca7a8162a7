"""Write the seed corpus (tests/fuzz/corpus/seed/) from `targets.seeds()`; run again after a format change."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.fuzz.targets import seeds

logger = logging.getLogger(__name__)
SEED_DIR = Path(__file__).parent / "corpus" / "seed"


def main() -> None:
    SEED_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (SEED_DIR / name).write_bytes(data)
    logger.info("wrote %d seeds to %s", len(seeds()), SEED_DIR)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
