#!/usr/bin/env bash
# The trainer operator's flow: build the trainer container and run it against a sponsor's manifest.
#
#   RPC_URL=https://… IPFS_URL=http://my-kubo:5001 TASK_ID=1 MANIFEST=./deployment.json \
#   KEYSTORE=./trainer.keystore.json PASSWORD_FILE=./password scripts/testnet_trainer.sh
#
# The keystore, its password file, the manifest and your data are mounted read-only; nothing is baked in.
# Optional: DATA_DIR with MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz); without it
# the trainer uses scikit-learn's digits. GPU: BASE_IMAGE/TORCH_INDEX build args and GPU=1 (needs nvidia runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RPC_URL:?}" "${IPFS_URL:?}" "${TASK_ID:?}" "${MANIFEST:?}" "${KEYSTORE:?}" "${PASSWORD_FILE:?}"
IMAGE=${IMAGE:-flchain-trainer}
build_args=()
[ -n "${BASE_IMAGE:-}" ] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -n "${TORCH_INDEX:-}" ] && build_args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")
docker build -f docker/python.Dockerfile --target trainer -t "$IMAGE" "${build_args[@]}" .

run_args=(--rm --name "flchain-trainer-$TASK_ID"
  -v "$(realpath "$MANIFEST"):/shared/deployment.json:ro"
  -v "$(realpath "$KEYSTORE"):/keys/trainer.json:ro"
  -v "$(realpath "$PASSWORD_FILE"):/keys/password:ro"
  -e FLCHAIN_TRAINER_RPC_URL="$RPC_URL" -e FLCHAIN_TRAINER_IPFS_URL="$IPFS_URL"
  -e FLCHAIN_TRAINER_MANIFEST=/shared/deployment.json -e FLCHAIN_TRAINER_TASK_ID="$TASK_ID"
  -e FLCHAIN_TRAINER_KEYSTORE=/keys/trainer.json -e FLCHAIN_TRAINER_PASSWORD_FILE=/keys/password
  -e FLCHAIN_TRAINER_LOG_FORMAT=plain)
if [ -n "${DATA_DIR:-}" ]; then
  run_args+=(-v "$(realpath "$DATA_DIR"):/data:ro" -e FLCHAIN_TRAINER_DATA_SOURCE=mnist
    -e FLCHAIN_TRAINER_MNIST_IMAGES=/data/train-images-idx3-ubyte.gz
    -e FLCHAIN_TRAINER_MNIST_LABELS=/data/train-labels-idx1-ubyte.gz)
fi
[ "${GPU:-0}" = "1" ] && run_args+=(--gpus all -e FLCHAIN_TRAINER_DEVICE=cuda)
exec docker run "${run_args[@]}" "$IMAGE"
