#!/bin/sh
# Generates the synthetic checkpoints the tests use (never committed) into $2, once.
set -eu
shared=$1
out=$2
py=${QE_PY:-/usr/bin/python3}
mkdir -p "$out"
for arch in resnet18 resnet50; do
  if [ ! -s "$out/$arch.pth" ]; then
    "$py" "$shared/models/make_synthetic.py" --arch $arch --out "$out/$arch.pth.tmp" --format pth
    mv "$out/$arch.pth.tmp" "$out/$arch.pth"
  fi
done
if [ ! -s "$out/resnet18.safetensors" ]; then
  "$py" "$shared/models/make_synthetic.py" --arch resnet18 --out "$out/resnet18.safetensors.tmp" --format safetensors
  mv "$out/resnet18.safetensors.tmp" "$out/resnet18.safetensors"
fi
# reference/cle.py reads npz (it needs torch for pth)
if [ ! -s "$out/resnet18.npz" ]; then
  "$py" "$shared/models/make_synthetic.py" --arch resnet18 --out "$out/resnet18.npz.tmp.npz" --format npz
  mv "$out/resnet18.npz.tmp.npz" "$out/resnet18.npz"
fi
