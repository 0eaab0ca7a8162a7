"""Coverage-guided fuzzing of the update codec with atheris (libFuzzer): frame parser, both headers, full decode.

    python tests/fuzz/fuzz_codec.py -max_total_time=60 -timeout=10 -rss_limit_mb=2048 CORPUS_DIR [SEED_DIR ...]

`make fuzz` runs it for FUZZ_SECONDS on a scratch copy of the corpora; a crashing input is written by libFuzzer
as crash-<sha1> in the working directory: add it to tests/fuzz/corpus/regressions/ once fixed.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["flchain.codec", "flchain.privacy"]):
    from tests.fuzz.targets import run_one


def main() -> None:
    atheris.Setup(sys.argv, run_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
