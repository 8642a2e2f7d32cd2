#!/bin/bash
# Quantized configs through the CLI: calibration with the golden settings reproduces the golden
# encodings file, classify with the golden encodings reproduces the golden logits bit for bit,
# and eval reports the quantized and FP32 figures.
. "$(dirname "$0")/clilib.sh"
Q=$QE_BIN
R18=$QE_BUILD/models/resnet18.pth
DEV=$QE_SHARED/data/dev
G=$QE_SHARED/golden/quantsim/resnet18_w8a8
PY=/usr/bin/python3

# the golden calibration: the first 64 dev images (sorted), batches of 32
expect_ok "eval resnet18_w8a8 (golden calibration)" $Q eval --model-config resnet18_w8a8 --weights "$R18" \
  --dataset-path "$DEV" --calib-per-class 0 --calib-images 64 --calib-batch 32 --save-encodings "$TMP/enc.json" \
  --limit 96 --json --no-db --predictions-out "$TMP/pred.csv"
cp "$TMP/out" "$TMP/eval.json"
$PY - "$TMP/enc.json" "$G/encodings.json" "$TMP/eval.json" <<'PY' || fail "calibrated encodings differ from the golden"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["activation_encodings"] == b["activation_encodings"]
assert a["param_encodings"] == b["param_encodings"]
r = json.load(open(sys.argv[3]))
assert r["model_config"] == "resnet18_w8a8" and r["images"] == 96
for k in ("top1", "top5", "fp32_top1", "fp32_top5", "agreement", "images_per_second"):
    assert k in r, k
assert 50 <= r["agreement"] <= 100, r
print("encodings identical; agreement with FP32 %.1f%%" % r["agreement"])
PY

# classify with the golden encodings: logits identical to the golden §9 logits
IMGS=$(sed "s|^|$QE_SHARED/|" "$G/eval-images.txt")
expect_ok "classify resnet18_w8a8 --encodings" $Q classify --model-config resnet18_w8a8 --weights "$R18" \
  --encodings "$G/encodings.json" --logits-out "$TMP/logits.f32" $IMGS
cmp -s "$TMP/logits.f32" "$G/logits.f32" || fail "quantized logits differ from the golden"

# eval with the saved encodings needs no calibration and predicts the same
expect_ok "eval with --encodings" $Q eval --model-config resnet18_w8a8 --weights "$R18" --dataset-path "$DEV" \
  --encodings "$TMP/enc.json" --limit 96 --no-fp32 --no-db --predictions-out "$TMP/pred2.csv" --json
cmp -s "$TMP/pred.csv" "$TMP/pred2.csv" || fail "eval with loaded encodings predicts differently"
$PY -c "import json; r=json.load(open('$TMP/out')); assert 'fp32_top1' not in r and r['images']==96" || fail "--no-fp32"

# bad encodings files
echo '{"activation_encodings": {}, "param_encodings": {}}' >"$TMP/empty-enc.json"
expect_fail "encodings without activations" "no activation encoding" $Q classify --model-config resnet18_w8a8 \
  --weights "$R18" --encodings "$TMP/empty-enc.json" "$DEV/n01484850/ILSVRC2012_val_00002958.JPEG"
echo '{"activation_encodings": ' >"$TMP/bad-enc.json"
expect_fail "malformed encodings" "json|JSON" $Q classify --model-config resnet18_w8a8 --weights "$R18" \
  --encodings "$TMP/bad-enc.json" "$DEV/n01484850/ILSVRC2012_val_00002958.JPEG"
expect_fail "W4 encodings on a W8 config" "bit" $Q classify --model-config resnet18_w8a8 --weights "$R18" \
  --encodings "$QE_SHARED/golden/quantsim/resnet18_w4a8/encodings.json" "$DEV/n01484850/ILSVRC2012_val_00002958.JPEG"
finish
