#!/usr/bin/env bash
# Hash your own images: a folder with one sub-folder per class (e.g. photos/cats/*.jpg, photos/dogs/*.jpg).
# Uses the ImageNet-pretrained EfficientNet-Lite0 backbone (bundled, works offline), frozen on a CPU: its features
# are computed once and cached in the run folder, only the hash head trains (minutes); on a GPU the whole network
# is fine-tuned. BACKBONE_MODE=finetune (or frozen) overrides that choice.
#   bash examples/own_images.sh path/to/photos [bits]
set -euo pipefail
DATA=${1:?usage: own_images.sh FOLDER [BITS]}
BITS=${2:-48}
cd "$(dirname "$0")/.."
bash .ci/install
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-examples/out-own}

# per-class protocol: queries and training images drawn per class, database = all but the queries;
# batches of 32, so that a few hundred training images still give several steps per epoch
dhash train --data "$DATA" --method dha --bits "$BITS" --backbone efficientnet-lite0 --pretrained \
  --protocol per-class --queries-per-class "${QUERIES_PER_CLASS:-10}" --train-per-class "${TRAIN_PER_CLASS:-50}" \
  --epochs "${EPOCHS:-10}" --batch-size "${BATCH_SIZE:-32}" ${BACKBONE_MODE:+--backbone-mode "$BACKBONE_MODE"} -o "$OUT/run"
# frozen: encoding reads the training images' features from the run's cache (features.h5)
dhash encode "$DATA" --model "$OUT/run/model.pt" --split database -o "$OUT/database.h5"
dhash encode "$DATA" --model "$OUT/run/model.pt" --split query -o "$OUT/queries.h5"
dhash index "$OUT/database.h5" -o "$OUT/database.index.h5"
dhash query "$OUT/database.index.h5" --codes "$OUT/queries.h5" -k 8 --first 6 --grid "$OUT/retrievals.png"
dhash evaluate --queries "$OUT/queries.h5" --database "$OUT/database.h5" --map-at all --curves "$OUT/curves"
