#!/usr/bin/env bash
# The sponsor's flow on a real testnet (e.g. Sepolia through any JSON-RPC URL):
#   1. a keystore account (created here if missing; fund it with test ether when asked),
#   2. deploy the coordinator (and a DemoToken unless TOKEN is set) and write the deployment manifest,
#   3. mint demo tokens to yourself (DemoToken only), create and fund a task, print the manifest.
#
#   RPC_URL=https://… CHAIN_ID=11155111 AGGREGATOR=0x… FLCHAIN_KEYSTORE_PASSWORD=… scripts/testnet_sponsor.sh
#
# Optional: KEYSTORE (default ./sponsor.keystore.json), MANIFEST (./deployment.json), TOKEN (an existing ERC-20),
# IPFS_URL (http://127.0.0.1:5001), REWARD_PER_ROUND, MIN_STAKE, FUNDING (token base units), MODEL, COMMIT_WINDOW_S, REVEAL_WINDOW_S.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RPC_URL:?set RPC_URL to the testnet's JSON-RPC endpoint}"
: "${CHAIN_ID:?set CHAIN_ID (Sepolia: 11155111)}"
: "${AGGREGATOR:?set AGGREGATOR to the aggregator's address}"
: "${FLCHAIN_KEYSTORE_PASSWORD:?set FLCHAIN_KEYSTORE_PASSWORD (the keystore password; never on the command line)}"
KEYSTORE=${KEYSTORE:-sponsor.keystore.json}
MANIFEST=${MANIFEST:-deployment.json}
IPFS_URL=${IPFS_URL:-http://127.0.0.1:5001}
REWARD_PER_ROUND=${REWARD_PER_ROUND:-100000000000000000000}   # 100 tokens of 18 decimals
MIN_STAKE=${MIN_STAKE:-10000000000000000000}                  # 10 tokens
FUNDING=${FUNDING:-1000000000000000000000}                    # 1,000 tokens
MODEL=${MODEL:-mlp-digits}
COMMIT_WINDOW_S=${COMMIT_WINDOW_S:-600}
REVEAL_WINDOW_S=${REVEAL_WINDOW_S:-300}
FLCHAIN=.venv/bin/flchain
export FLCHAIN_RPC_URL=$RPC_URL FLCHAIN_MANIFEST=$MANIFEST FLCHAIN_IPFS_URL=$IPFS_URL

./scripts/setup.sh
if [ ! -f "$KEYSTORE" ]; then
  $FLCHAIN keystore new --out "$KEYSTORE"
  echo "Fund the address above with test ether, then press Enter."; read -r _
fi
if [ ! -f "$MANIFEST" ]; then
  $FLCHAIN deploy --keystore "$KEYSTORE" --chain-id "$CHAIN_ID" --out "$MANIFEST" ${TOKEN:+--token "$TOKEN"}
fi
SPONSOR=$(python3 -c "import json,sys; print('0x'+json.load(open(sys.argv[1]))['address'])" "$KEYSTORE")
if [ -z "${TOKEN:-}" ]; then
  $FLCHAIN token mint --keystore "$KEYSTORE" --to "$SPONSOR" --amount "$FUNDING"
fi
$FLCHAIN task create --keystore "$KEYSTORE" --aggregator "$AGGREGATOR" --model "$MODEL" --commit-window-s "$COMMIT_WINDOW_S" --reveal-window-s "$REVEAL_WINDOW_S" \
  --reward-per-round "$REWARD_PER_ROUND" --min-stake "$MIN_STAKE" --funding "$FUNDING"
echo "Manifest ($MANIFEST) — share it and the task id with trainers and the aggregator:"
cat "$MANIFEST"
