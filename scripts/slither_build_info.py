#!/usr/bin/env python
"""Write a Hardhat build-info file of contracts/ for Slither, from the project's own solc-js standard-JSON I/O.

Slither cannot drive solc-js itself; it reads a Hardhat build-info file (`{"input": ..., "output": ...}` of one
standard-JSON compilation). This compiles the same sources with the same settings as `flchain contracts build`,
plus the ASTs Slither needs, and writes <out>/artifacts/build-info/flchain.json.
Usage: .venv/bin/python scripts/slither_build_info.py <out dir>
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import solcx

from flchain.chain.compile import CompileError, compiler_version, standard_input
from flchain.paths import SOLC_WRAPPER

logger = logging.getLogger(__name__)


def build_info(out_dir: Path) -> Path:
    """Compile contracts/ with ASTs and write the build-info file; returns its path."""
    compiler_input = standard_input()
    settings = compiler_input["settings"]
    assert isinstance(settings, dict)
    settings["outputSelection"] = {
        "*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers"], "": ["ast"]}
    }
    output = solcx.compile_standard(compiler_input, solc_binary=SOLC_WRAPPER, allow_empty=True)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", "?") for e in errors))
    long_version = compiler_version()
    body = {
        "_format": "hh-sol-build-info-1",
        "id": "flchain",
        "solcVersion": long_version.split("+")[0],
        "solcLongVersion": long_version,
        "input": compiler_input,
        "output": output,
    }
    path = out_dir / "artifacts" / "build-info" / "flchain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 2:
        logger.error("usage: slither_build_info.py <out dir>")
        return 2
    logger.info("wrote %s", build_info(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
