#!/bin/bash
# quanteval optimize (BN fold + CLE, spec optimization.md §4): the checkpoint it writes for the
# synthetic ResNet18, quantized with the golden CLE encodings, gives the golden logits of
# golden/cle/resnet18 byte for byte (so every CLE'd weight and bias bit is right, quantsim.md §9);
# bad inputs fail with one line.
. "$(dirname "$0")/clilib.sh"
Q=$QE_BIN
R18=$QE_BUILD/models/resnet18.pth
G=$QE_SHARED/golden/cle/resnet18

expect_ok "optimize resnet18" $Q optimize --arch resnet18 --weights "$R18" --out "$TMP/r18-cle.pth"
grep -qE '^optimize resnet18: .*8 pairs scaled, 0 of 1920 channels absorbed bias' "$TMP/out" \
  || fail "summary line: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "summary is not one line"

IMGS=$(sed "s|^|$QE_SHARED/data/dev/|" "$G/eval.txt")
expect_ok "classify the optimized checkpoint with the golden CLE encodings" $Q classify \
  --model-config resnet18_w8a8 --weights "$TMP/r18-cle.pth" --encodings "$G/encodings.json" \
  --logits-out "$TMP/logits.f32" $IMGS
cmp -s "$TMP/logits.f32" "$G/logits.f32" || fail "logits of the optimized checkpoint differ from golden/cle/resnet18/logits.f32"

# --cle is the default: same bytes
expect_ok "optimize --cle" $Q optimize --arch resnet18 --weights "$R18" --out "$TMP/r18-cle2.pth" --cle
cmp -s "$TMP/r18-cle.pth" "$TMP/r18-cle2.pth" || fail "--cle output differs from the default"

# bad inputs: one line on stderr, non-zero exit
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$1: stderr is not one line"; }
expect_fail "missing weights file" "optimize: .*nope.pth" $Q optimize --arch resnet18 --weights "$TMP/nope.pth" --out "$TMP/x.pth"
one_line "missing weights file"
expect_fail "wrong arch" "optimize: .*is a resnet18 checkpoint, not resnet50" $Q optimize --arch resnet50 --weights "$R18" --out "$TMP/x.pth"
one_line "wrong arch"
expect_fail "unknown arch" "optimize: --arch must be resnet18 or resnet50" $Q optimize --arch vgg16 --weights "$R18" --out "$TMP/x.pth"
expect_fail "already optimized" "optimize: .*BN-free" $Q optimize --arch resnet18 --weights "$TMP/r18-cle.pth" --out "$TMP/x.pth"
expect_fail "adaround" "optimize: --adaround is not supported yet" $Q optimize --arch resnet18 --weights "$R18" --out "$TMP/x.pth" --adaround
one_line "adaround"
expect_fail "no --out" "optimize: usage" $Q optimize --arch resnet18 --weights "$R18"
# without --weights and no model files to find: the built-in synthetic checkpoint, labelled,
# which is the same model as $R18, so the same bytes
mkdir -p "$TMP/home" "$TMP/empty"
expect_ok "optimize without --weights" env -C "$TMP/empty" HOME="$TMP/home" QUANTEVAL_MODELS="$TMP/empty" \
  XDG_CACHE_HOME="$TMP/home/.cache" $Q optimize --arch resnet18 --out "$TMP/r18-synth-cle.pth"
grep -q 'synthetic resnet18' "$TMP/out" || fail "default input not labelled synthetic: $(cat "$TMP/out")"
cmp -s "$TMP/r18-cle.pth" "$TMP/r18-synth-cle.pth" || fail "optimize of the built-in synthetic differs from that of $R18"
[ ! -e "$TMP/x.pth" ] || fail "a failed optimize left an output file"
finish
