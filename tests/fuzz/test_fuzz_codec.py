"""The codec fuzzer in the suite: every corpus input replays cleanly, and a short coverage-guided run finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.run_fuzz import run
from tests.fuzz.targets import run_one, seeds

CORPUS = Path(__file__).parent / "corpus"
SHORT_RUN_S = 30


@pytest.mark.parametrize("path", sorted((CORPUS / "seed").iterdir()) + sorted((CORPUS / "regressions").iterdir()),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_seed_and_regression_input_ends_in_a_codec_error_or_a_decode(path: Path) -> None:
    run_one(path.read_bytes())  # anything but a CodecError escaping fails the test


def test_seed_files_are_what_make_seeds_writes() -> None:
    on_disk = {p.name: p.read_bytes() for p in (CORPUS / "seed").iterdir()}
    assert on_disk == seeds()


@pytest.mark.timeout(SHORT_RUN_S + 180)
def test_a_short_coverage_guided_run_finds_no_crash(tmp_path: Path) -> None:
    summary = run(SHORT_RUN_S, tmp_path)
    assert summary.findings == ()
    assert summary.executions > 1000 and summary.coverage_edges > 100
