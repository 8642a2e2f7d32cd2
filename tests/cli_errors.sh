#!/bin/bash
# Bad input through the CLI: every case gives a clear error, a non-zero exit and no sanitizer
# report.
. "$(dirname "$0")/clilib.sh"
Q=$QE_BIN
R18=$QE_BUILD/models/resnet18.pth
DEV=$QE_SHARED/data/dev
IMG=$DEV/n01484850/ILSVRC2012_val_00002958.JPEG
PY=/usr/bin/python3

# --- checkpoints ---
: >"$TMP/empty.pth"
head -c 100000 /dev/urandom >"$TMP/garbage.pth"
head -c 1000000 "$R18" >"$TMP/trunc1.pth"
head -c 30 "$R18" >"$TMP/trunc2.pth"
$PY - "$TMP/evil.pth" <<'PY'
import sys, zipfile
# A torch-style zip whose data.pkl calls os.system: must be refused, never executed.
pkl = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00touch /tmp/qe_pwnedq\x01\x85q\x02Rq\x03."
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pkl)
    z.writestr("archive/version", "3\n")
PY
rm -f /tmp/qe_pwned
expect_fail "zero-byte checkpoint" "weights" $Q classify --weights "$TMP/empty.pth" "$IMG"
expect_fail "garbage checkpoint" "weights" $Q classify --weights "$TMP/garbage.pth" "$IMG"
expect_fail "truncated checkpoint (1 MB)" "weights" $Q classify --weights "$TMP/trunc1.pth" "$IMG"
expect_fail "truncated checkpoint (30 B)" "weights" $Q classify --weights "$TMP/trunc2.pth" "$IMG"
expect_fail "forbidden pickle global" "os.system|forbidden|not allowed" $Q classify --weights "$TMP/evil.pth" "$IMG"
[ -e /tmp/qe_pwned ] && fail "the forbidden global was executed"
expect_fail "missing weights file" "No such file|not found|cannot" $Q classify --weights "$TMP/nope.pth" "$IMG"
expect_fail "wrong architecture" "resnet18.*resnet50|resnet50.*resnet18" $Q eval --model-config resnet50_fp32 --weights "$R18" --dataset-path "$DEV" --limit 1

# --- images ---
head -c 2000 "$IMG" >"$TMP/trunc.jpg"
: >"$TMP/zero.jpg"
head -c 5000 /dev/urandom >"$TMP/garbage.jpg"
printf '\x89PNG\r\n\x1a\n0000000000000000' >"$TMP/fake.png"
$PY - "$IMG" "$TMP/corrupt.jpg" "$TMP/huge.jpg" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
# corrupt: scramble the entropy-coded data after the first SOS
sos = data.index(b"\xff\xda")
for i in range(sos + 40, len(data) - 2, 7):
    data[i] ^= 0x5A
open(sys.argv[2], "wb").write(data)
# huge: declare 65000x65000 in the SOF0/SOF2 header
data = bytearray(open(sys.argv[1], "rb").read())
for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
    i = data.find(marker)
    if i >= 0:
        data[i + 5:i + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")
        break
open(sys.argv[3], "wb").write(data)
PY
expect_fail "truncated JPEG" "truncated|corrupt|premature" $Q classify --weights "$R18" "$TMP/trunc.jpg"
expect_fail "zero-byte JPEG" "empty|unsupported|format" $Q classify --weights "$R18" "$TMP/zero.jpg"
expect_fail "garbage image" "unsupported" $Q classify --weights "$R18" "$TMP/garbage.jpg"
expect_fail "PNG content" "unsupported" $Q classify --weights "$R18" "$TMP/fake.png"
expect_fail "65000x65000 JPEG" "pixel|too large|limit" $Q classify --weights "$R18" "$TMP/huge.jpg"
# a corrupt entropy stream may decode to garbage or fail, but must not crash
checks=$((checks + 1))
$Q classify --weights "$R18" "$TMP/corrupt.jpg" >"$TMP/out" 2>"$TMP/err"; rc=$?
if [ $rc -gt 2 ] || grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then fail "corrupt JPEG: exit $rc"; cat "$TMP/err" >&2; else echo "ok: corrupt JPEG (exit $rc)"; fi
ONE=$(awk -F'\t' '$3==1 && $4==1 {print $1}' "$QE_SHARED/data/dev-manifest.tsv" | head -1)
expect_ok "1x1 JPEG classifies" $Q classify --weights "$R18" "$DEV/$ONE"
grep -q "1\." "$TMP/out" || fail "1x1 JPEG: no top-5 printed"

# --- datasets and options ---
mkdir -p "$TMP/emptyds/n01440764"
expect_fail "empty dataset" "no images" $Q eval --weights "$R18" --dataset-path "$TMP/emptyds"
expect_fail "missing dataset" "not a directory" $Q eval --weights "$R18" --dataset-path "$TMP/none"
mkdir -p "$TMP/badclass/not_a_wnid" && cp "$IMG" "$TMP/badclass/not_a_wnid/"
expect_fail "unknown class folder" "not an ImageNet class" $Q eval --weights "$R18" --dataset-path "$TMP/badclass"
expect_fail "unknown model config" "unknown model config" $Q eval --model-config resnet34_fp32
expect_fail "bad option" "unknown or incomplete option" $Q eval --frobnicate
expect_fail "bad batch" "--batch expects" $Q eval --batch 0
expect_fail "use-cuda True" "CPU only" $Q eval --use-cuda True
expect_fail "unknown command" "unknown command" $Q frobnicate
expect_fail "classify without image" "no image" $Q classify
expect_fail "preprocess bad stage" "--stage" $Q preprocess --stage foo --out "$TMP/x" "$IMG"
finish
