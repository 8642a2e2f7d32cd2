#!/bin/bash
# The CLI end to end on the dev images: eval (folder and flat layouts), predictions, classify,
# preprocess and synth, checked against the goldens.
. "$(dirname "$0")/clilib.sh"
Q=$QE_BIN
R18=$QE_BUILD/models/resnet18.pth
DEV=$QE_SHARED/data/dev
PY=/usr/bin/python3

# eval over the dev images (all 600; the sanitizer run takes the first 96): every prediction
# against PyTorch's (golden/fp32/top5-resnet18.csv)
N=600
[ "${QE_TEST_QUICK:-0}" != 0 ] && N=96
expect_ok "eval resnet18_fp32 on dev (folder layout)" $Q eval --model-config resnet18_fp32 --weights "$R18" \
  --dataset-path "$DEV" --json --predictions-out "$TMP/pred.csv" --limit $N
cp "$TMP/out" "$TMP/eval.json"
$PY - "$TMP/eval.json" "$TMP/pred.csv" "$QE_SHARED/golden/fp32/top5-resnet18.csv" $N <<'PY' || fail "eval results differ from the goldens"
import csv, json, sys
n = int(sys.argv[4])
r = json.load(open(sys.argv[1]))
assert r["model_config"] == "resnet18_fp32" and r["images"] == n, r
assert r["top1"] == 0.0, r            # golden: 0/600 (random weights)
assert r["images_per_second"] > 0 and "top5" in r
ours = list(csv.DictReader(open(sys.argv[2])))
gold = list(csv.DictReader(open(sys.argv[3])))[:n]
assert len(ours) == n == len(gold)
bad = 0
for o, g in zip(ours, gold):
    assert o["path"] == g["path"] and o["label"] == g["label"], (o, g)
    if o["pred1"] != g["pred1"] and float(g["margin"]) >= 1e-4 * abs(float(g["logit1"])):
        bad += 1
        print("top-1 differs:", o["path"], o["pred1"], g["pred1"], g["margin"])
top5 = 100.0 * sum(1 for g in gold if g["label"] in [g["pred%d" % k] for k in range(1, 6)]) / n
assert abs(r["top5"] - top5) < 1e-4 + (100.0 / n) * bad, (r["top5"], top5)
assert bad == 0
print("eval matches the goldens on %d images" % n)
PY

# the flat official layout gives the same predictions (for the same images: the flat order is by
# file name, so take the folder run's images)
mkdir -p "$TMP/flat"
tail -n +2 "$TMP/pred.csv" | cut -d, -f1 | while read -r p; do ln -s "$DEV/$p" "$TMP/flat/$(basename "$p")"; done
grep -F -f <(tail -n +2 "$TMP/pred.csv" | cut -d, -f1 | xargs -n1 basename) "$QE_SHARED/data/dev-flat-ground-truth.txt" >"$TMP/gt.txt"
# (decoding on two worker threads rather than inline on the compute threads: the same predictions)
expect_ok "eval on the flat layout" $Q eval --weights "$R18" --dataset-path "$TMP/flat" \
  --ground-truth "$TMP/gt.txt" --predictions-out "$TMP/pred-flat.csv" --workers 2
$PY - "$TMP/pred.csv" "$TMP/pred-flat.csv" $N <<'PY' || fail "flat layout predictions differ"
import csv, sys, os
a = {os.path.basename(r["path"]): (r["label"], r["pred1"]) for r in csv.DictReader(open(sys.argv[1]))}
b = {os.path.basename(r["path"]): (r["label"], r["pred1"]) for r in csv.DictReader(open(sys.argv[2]))}
assert a == b and len(a) == int(sys.argv[3])
PY

# a partial dataset (3 classes) keeps the real class indices
mkdir -p "$TMP/part"
for w in $(ls "$DEV" | sed -n '10p;50p;120p'); do ln -s "$DEV/$w" "$TMP/part/$w"; done
expect_ok "eval on a partial dataset" $Q eval --weights "$R18" --dataset-path "$TMP/part" --predictions-out "$TMP/pred-part.csv"
$PY - "$TMP/pred-part.csv" "$QE_SHARED/golden/fp32/top5-resnet18.csv" <<'PY' || fail "partial dataset labels wrong"
import csv, sys
g = {r["path"]: r for r in csv.DictReader(open(sys.argv[2]))}
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 9
for r in rows:
    assert r["label"] == g[r["path"]]["label"], r
PY

# classify agrees with eval, and writes the logits in argument order
IMGS=$(head -4 "$TMP/pred.csv" | tail -3 | cut -d, -f1 | sed "s|^|$DEV/|")
expect_ok "classify --json --logits-out" $Q classify --weights "$R18" --json --logits-out "$TMP/logits.f32" $IMGS
$PY - "$TMP/out" "$TMP/pred.csv" "$TMP/logits.f32" <<'PY' || fail "classify disagrees with eval"
import csv, json, sys, struct
lines = [json.loads(l) for l in open(sys.argv[1])]
pred = list(csv.DictReader(open(sys.argv[2])))[:3]
assert len(lines) == 3
for l, p in zip(lines, pred):
    assert [t["index"] for t in l["top5"]] == [int(p["pred%d" % k]) for k in range(1, 6)], (l, p)
    assert l["top5"][0]["wnid"].startswith("n") and l["top5"][0]["label"]
raw = open(sys.argv[3], "rb").read()
assert len(raw) == 3 * 1000 * 4
row0 = struct.unpack("<1000f", raw[:4000])
assert max(range(1000), key=lambda i: (row0[i], -i)) == lines[0]["top5"][0]["index"]
PY

# preprocess writes exactly the golden crops (28 images, argument order) and tensor
G=$QE_SHARED/golden/preprocess
SRCS=$($PY -c "import json; [print('$DEV/' + e['source']) for e in json.load(open('$G/manifest.json'))['images']]")
expect_ok "preprocess --stage crop" $Q preprocess --stage crop --out "$TMP/crops.u8" $SRCS
$PY -c "import json; [print('$G/' + e['u8']['file']) for e in json.load(open('$G/manifest.json'))['images']]" | xargs cat >"$TMP/gold.u8"
cmp -s "$TMP/crops.u8" "$TMP/gold.u8" || fail "preprocess crops differ from the goldens"
expect_ok "preprocess --stage tensor" $Q preprocess --stage tensor --out "$TMP/t.f32" "$DEV/$(
  $PY -c "import json; print([e['source'] for e in json.load(open('$G/manifest.json'))['images'] if e['u8']['file'].startswith('17_')][0])")"
cmp -s "$TMP/t.f32" "$G/17_ILSVRC2012_val_00044438.f32.chw" || fail "preprocess tensor differs from the golden"

# synth writes the documented bytes
expect_ok "synth resnet18" $Q synth --arch resnet18 --out "$TMP/s18.pth"
[ "$(sha256sum "$TMP/s18.pth" | cut -d' ' -f1)" = ba60de5ee52ae9f11e7adcd3d4d15d037ac21162df4acf4975ea8457bd4cdee9 ] || fail "synth resnet18 sha256"

# the built-in default: no arguments at all
expect_ok "eval with the built-in defaults" $Q eval --json
$PY -c "import json,sys; r=json.load(open('$TMP/out')); assert r['synthetic'] is True and r['images'] == 16, r" || fail "default eval"
finish
