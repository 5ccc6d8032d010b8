#!/usr/bin/env bash
# dhash quick-start: install, then train → encode → index → query → evaluate on Fashion-MNIST.
# Writes everything under examples/out/ (or $OUT): the run, code files, index, curves and a
# retrieval picture (examples/out/retrievals.png). About 5 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-examples/out}
METHOD=${METHOD:-dha}
BITS=${BITS:-32}
EPOCHS=${EPOCHS:-5}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/6 train $METHOD, $BITS bits, $EPOCHS epochs (Fashion-MNIST, protocol full)"
dhash train --data fashion-mnist --method "$METHOD" --bits "$BITS" --epochs "$EPOCHS" -o "$OUT/run"

step "2/6 encode the database (60,000 training images) and the queries (10,000 test images)"
dhash encode fashion-mnist --model "$OUT/run/model.pt" --split database -o "$OUT/database.h5"
dhash encode fashion-mnist --model "$OUT/run/model.pt" --split query -o "$OUT/queries.h5"

step "3/6 index the database"
dhash index "$OUT/database.h5" -o "$OUT/database.index.h5"

step "4/6 query: 5 nearest neighbours of the first 4 queries (picture: $OUT/retrievals.png)"
dhash query "$OUT/database.index.h5" --codes "$OUT/queries.h5" -k 5 --first 4 --grid "$OUT/retrievals.png"

step "5/6 evaluate: mAP@1000, P@H<=2, precision/recall curves ($OUT/curves/)"
dhash evaluate --queries "$OUT/queries.h5" --database "$OUT/database.h5" --map-at 1000 --curves "$OUT/curves"

step "6/6 done"
ls "$OUT" "$OUT/curves"
