#!/usr/bin/env bash
# Slither over contracts/ (part of `make lint`): fails on any high or medium finding in our sources.
# Slither cannot drive solc-js, so the project's own standard-JSON compile is written as a Hardhat build-info file
# (scripts/slither_build_info.py) and read by scripts/slither_check.py in .venv-slither (installed by setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/slither
rm -rf "$out"
PYTHONPATH="$PWD" .venv/bin/python scripts/slither_build_info.py "$out"
# crytic-compile asks npx for Hardhat's paths first and logs the failure; that noise is dropped, real errors are not.
.venv-slither/bin/python scripts/slither_check.py "$out/artifacts" 2> >(grep -v "npm error\|npx canceled\|Problem executing hardhat" >&2)
