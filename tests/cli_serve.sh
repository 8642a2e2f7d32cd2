#!/bin/bash
# quanteval serve end to end: a real daemon on a loopback port, driven over HTTP with curl.
# Classify against `quanteval classify`, jobs over the 600 dev images, kill -9 and SIGTERM in the
# middle of a job and resume, every error status, the token, a burst of concurrent requests,
# metrics. Jobs use resnet18_fp32, whose predictions are checked against the PyTorch goldens.
. "$(dirname "$0")/clilib.sh"
Q=$QE_BIN
R18=$QE_BUILD/models/resnet18.pth
DEV=$QE_SHARED/data/dev
PY=/usr/bin/python3
TOKEN=test-token-$$
DB=$TMP/serve.db
LOG=$TMP/serve.log
PID=
BASE=
export QUANTEVAL_MODELS=$TMP/no-models   # no default weights: only what the config names
# Under the sanitizers a forward pass is about ten times slower: the jobs then cover the first
# N dev images instead of all 600, with the same checks.
if ldd "$Q" | grep -q libasan; then N=48 ND=48; else N=600 ND=200; fi   # ND: the SIGTERM job

cat >"$TMP/server.json" <<EOF
{
  "models": [
    {"config": "resnet18_fp32", "weights": "$R18"},
    {"config": "resnet18_w8a8", "weights": "$R18"},
    {"config": "resnet50_fp32", "weights": "$TMP/missing-resnet50.pth"}
  ],
  "datasets": {"dev": "$DEV"},
  "token": "$TOKEN",
  "threads": 2,
  "http_threads": 4,
  "limits": {"max_body_bytes": 2000000, "max_image_pixels": 10000000, "max_batch": 8, "max_delay_ms": 5, "queue": 8},
  "jobs": {"batch": 16}
}
EOF

# jq-like: jget FILE 'python expression over j'
jget() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

check() {  # check NAME CONDITION-COMMAND...
  name=$1; shift
  checks=$((checks + 1))
  if "$@"; then echo "ok: $name"; else fail "$name"; fi
}

# http METHOD PATH [curl args...]: status in $STATUS, body in $TMP/body, headers in $TMP/headers.
http() {
  m=$1; p=$2; shift 2
  STATUS=$(curl -s -m 60 -X "$m" -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' "$@" "$BASE$p")
}

expect_status() {  # expect_status NAME WANT METHOD PATH [curl args...]
  name=$1; want=$2; shift 2
  http "$@"
  checks=$((checks + 1))
  if [ "$STATUS" != "$want" ]; then fail "$name: status $STATUS, want $want: $(head -c 300 "$TMP/body")"; return 1; fi
  if [ "$want" -ge 400 ] && ! $PY -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$TMP/body" 2>/dev/null; then
    fail "$name: $want without a JSON error body: $(head -c 300 "$TMP/body")"; return 1
  fi
  echo "ok: $name ($STATUS)"
}

start_server() {
  : >"$LOG"
  $Q serve --config "$TMP/server.json" --listen 127.0.0.1:0 --db "$DB" 2>>"$LOG" &
  PID=$!
  for _ in $(seq 1 300); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$LOG" | head -1 | sed 's/.*://')
    [ -n "$port" ] && break
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "${port:-}" ]; then fail "server did not start"; cat "$LOG" >&2; finish; exit 1; fi
  BASE=http://127.0.0.1:$port
}

wait_ready() {
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/health/ready")" = 200 ] && return 0
    sleep 0.2
  done
  fail "server not ready after 120 s"; cat "$LOG" >&2; return 1
}

# wait_job ID CONDITION TIMEOUT: polls /v1/jobs/ID until the python condition over j holds.
wait_job() {
  for _ in $(seq 1 $(($3 * 4))); do
    curl -s "$BASE/v1/jobs/$1" -o "$TMP/job.json"
    [ "$(jget "$TMP/job.json" "$2" 2>/dev/null)" = True ] && return 0
    sleep 0.25
  done
  fail "job $1: '$2' not reached in $3 s: $(cat "$TMP/job.json")"; return 1
}

# stop_server SIGNAL: sends it and waits; the exit status is in $RC.
stop_server() {
  kill -"$1" $PID
  for _ in $(seq 1 600); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  if kill -0 $PID 2>/dev/null; then fail "server still running 60 s after SIG$1"; kill -9 $PID; fi
  wait $PID; RC=$?
  PID=
  if grep -qE 'Sanitizer|runtime error:' "$LOG"; then fail "sanitizer report"; grep -A20 -E 'Sanitizer|runtime error:' "$LOG" | head -40 >&2; fi
}
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$TMP"' EXIT

submit() {  # submit JSON: job id in $JOB
  http POST /v1/jobs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$1"
  checks=$((checks + 1))
  if [ "$STATUS" != 202 ] || ! grep -qi '^Location: /v1/jobs/[0-9]' "$TMP/headers"; then
    fail "submit $1: status $STATUS $(cat "$TMP/body")"; JOB=0; return 1
  fi
  JOB=$(jget "$TMP/body" 'j["id"]')
  echo "ok: job $JOB queued: $1"
}

# ---- configuration errors: one line, exit status 2 (1 when the address cannot be bound) ----
echo '{"modles": []}' >"$TMP/bad.json"
expect_fail "serve: unknown config key" "unknown key 'modles'" $Q serve --config "$TMP/bad.json" --db "$DB"
echo '{"models": ["resnet18_w8a8"], "calib": {"dataset": "imagenet"}}' >"$TMP/bad.json"
expect_fail "serve: calibration dataset not configured" "dataset 'imagenet'" $Q serve --config "$TMP/bad.json" --db "$DB"
expect_fail "serve: unknown model config" "resnet77" $Q serve --config <(echo '{"models": ["resnet77_fp32"]}') --db "$DB"
expect_fail "serve: bad listen address" "listen address" $Q serve --config <(echo '{"models": ["resnet18_fp32"]}') --listen nonsense --db "$DB"

# ---- start: live at once, ready once loaded; the model with missing weights is unavailable ----
start_server
expect_status "live at once" 200 GET /v2/health/live
wait_ready && echo "ok: ready"
expect_status "ping" 200 GET /ping
# ---- the dashboard: the web/ files byte for byte, with their types; the page under a CSP ----
# header NAME REGEX: the last reply has header NAME with a value matching REGEX (extended), whole.
header() { tr -d '\r' <"$TMP/headers" | grep -qiE "^$1: $2\$"; }
# served_as FILE TYPE: the last reply is web/FILE as TYPE, revalidated before every reuse.
served_as() { header Content-Type "$2" && header Cache-Control no-cache && header X-Content-Type-Options nosniff &&
  cmp "$TMP/body" "$QE_SRC/web/$1"; }
expect_status "dashboard page" 200 GET /
check "GET / = web/index.html, text/html" served_as index.html 'text/html; charset=utf-8'
check "GET /: Content-Security-Policy default-src 'self'" header Content-Security-Policy "default-src 'self'(;.*)?"
check "GET /: loads app.js and style.css" grep -qzE '<link rel="stylesheet" href="style\.css">.*<script src="app\.js"' "$TMP/body"
expect_status "dashboard script" 200 GET /app.js
check "GET /app.js = web/app.js, text/javascript" served_as app.js 'text/javascript; charset=utf-8'
expect_status "dashboard style sheet" 200 GET /style.css
check "GET /style.css = web/style.css, text/css" served_as style.css 'text/css; charset=utf-8'
expect_status "dashboard: other methods refused" 405 POST /app.js -d x
expect_status "dashboard: no other files" 404 GET /index.html
expect_status "models" 200 GET /v1/models
check "models list: two ready, resnet50_fp32 unavailable with its reason" \
  $PY - "$TMP/body" <<'PY'
import json, sys
m = {x["model_config"]: x for x in json.load(open(sys.argv[1]))["models"]}
assert m["resnet18_fp32"]["status"] == "ready" and m["resnet18_w8a8"]["status"] == "ready", m
assert m["resnet50_fp32"]["status"] == "unavailable" and "missing-resnet50.pth" in m["resnet50_fp32"]["reason"]
q = m["resnet18_w8a8"]
assert q["param_bw"] == 8 and q["act_bw"] == 8 and q["memory_bytes"] > 1e6 and q["reference_top1"] > 60
assert q["encodings_source"].startswith("calibrated on") and len(q["weights_sha256"]) == 64, q
PY
expect_status "one model" 200 GET /v1/models/resnet18_w8a8

# ---- classify: the same top-5 as `quanteval classify` (w8a8 calibrates on the samples in both) ----
IMGS=$(ls "$DEV"/*/*.JPEG | awk 'NR % 100 == 1')
$Q classify --json --weights "$R18" $IMGS >"$TMP/cli-fp32.jsonl" 2>"$TMP/cli.err" || fail "quanteval classify fp32"
$Q classify --json --model-config resnet18_w8a8 --weights "$R18" $IMGS >"$TMP/cli-w8a8.jsonl" 2>>"$TMP/cli.err" ||
  fail "quanteval classify w8a8"
: >"$TMP/srv-fp32.jsonl"; : >"$TMP/srv-w8a8.jsonl"; : >"$TMP/srv-ts.jsonl"
for f in $IMGS; do
  http POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$f"
  cat "$TMP/body" >>"$TMP/srv-fp32.jsonl"
  http POST /v1/models/resnet18_w8a8/classify -F "image=@$f;type=image/jpeg"
  cat "$TMP/body" >>"$TMP/srv-w8a8.jsonl"
  http POST /predictions/resnet18_w8a8 -F "data=@$f"
  cat "$TMP/body" >>"$TMP/srv-ts.jsonl"
done
check "classify (raw JPEG and multipart) = quanteval classify, fp32 and w8a8" \
  $PY - "$TMP" <<'PY'
import json, sys
d = sys.argv[1]
rows = lambda n: [json.loads(l) for l in open(f"{d}/{n}.jsonl")]
for cfg in ("fp32", "w8a8"):
    cli, srv = rows("cli-" + cfg), rows("srv-" + cfg)
    assert len(cli) == len(srv) == 6, (len(cli), len(srv))
    for c, s in zip(cli, srv):
        assert s.get("model_config") == "resnet18_" + cfg and s["latency_ms"] > 0 and s["synthetic"] == c["synthetic"], (s, c)
        assert [t["index"] for t in s["top5"]] == [t["index"] for t in c["top5"]], (s, c)
        assert [t["wnid"] for t in s["top5"]] == [t["wnid"] for t in c["top5"]]
        assert [t["label"] for t in s["top5"]] == [t["label"] for t in c["top5"]]
        for a, b in zip(s["top5"], c["top5"]):
            assert abs(a["probability"] - b["probability"]) < 2e-6, (a, b)
for t, s in zip(rows("srv-ts"), rows("srv-w8a8")):   # TorchServe style: {label: probability}
    assert sorted(t.values(), reverse=True)[0] == s["top5"][0]["probability"], (t, s)
PY

# ---- every error status, each answered with a JSON error; the server keeps serving ----
IMG1=$(echo "$IMGS" | head -1)
head -c 3000000 /dev/zero >"$TMP/big.bin"
$PY -c 'from PIL import Image; Image.new("RGB", (4000, 4000), (90, 120, 30)).save("'"$TMP"'/huge.jpg", quality=50)'
printf 'this is not a JPEG' >"$TMP/notjpeg.jpg"
expect_status "400 bad JSON" 400 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"model_config": '
expect_status "400 unknown dataset" 400 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -d '{"model_config": "resnet18_fp32", "dataset": "/etc"}'
expect_status "400 bad limit" 400 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -d '{"model_config": "resnet18_fp32", "dataset": "dev", "limit": -3}'
expect_status "400 unknown field" 400 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -d '{"model_config": "resnet18_fp32", "dataset": "dev", "path": "/"}'
expect_status "400 unavailable model" 400 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -d '{"model_config": "resnet50_fp32", "dataset": "dev"}'
expect_status "400 bad query" 400 GET '/v1/runs?limit=zero'
expect_status "400 empty image" 400 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary ''
expect_status "400 multipart without image" 400 POST /v1/models/resnet18_fp32/classify -F 'other=1'
expect_status "401 no token" 401 POST /v1/jobs -d '{"model_config": "resnet18_fp32", "dataset": "dev"}'
expect_status "401 wrong token" 401 POST /v1/jobs -H 'Authorization: Bearer nope' -d '{"model_config": "resnet18_fp32", "dataset": "dev"}'
expect_status "401 cancel without token" 401 DELETE /v1/jobs/1
expect_status "404 unknown model" 404 POST /v1/models/resnet99/classify -H 'Content-Type: image/jpeg' --data-binary "@$IMG1"
expect_status "404 unknown model info" 404 GET /v1/models/resnet99
expect_status "404 unknown job" 404 GET /v1/jobs/999
expect_status "404 unknown run" 404 GET /v1/runs/999
expect_status "404 bad run id" 404 GET /v1/runs/abc/predictions
expect_status "404 no endpoint" 404 GET /v1/nothing
expect_status "405 wrong method" 405 DELETE /v1/models
grep -qi '^Allow: GET' "$TMP/headers" || fail "405 without Allow"
expect_status "405 GET classify" 405 GET /v1/models/resnet18_fp32/classify
expect_status "413 body over the limit" 413 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$TMP/big.bin"
expect_status "413 chunked body over the limit" 413 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' \
  -H 'Transfer-Encoding: chunked' --data-binary "@$TMP/big.bin"
expect_status "415 text body" 415 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: text/plain' --data-binary "@$IMG1"
expect_status "415 PNG part" 415 POST /v1/models/resnet18_fp32/classify -F "image=@$IMG1;type=image/png"
expect_status "415 job as form" 415 POST /v1/jobs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' -d 'x'
expect_status "422 undecodable image" 422 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$TMP/notjpeg.jpg"
expect_status "422 oversized image" 422 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$TMP/huge.jpg"
expect_status "503 unavailable model" 503 POST /v1/models/resnet50_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$IMG1"
grep -qi '^Retry-After:' "$TMP/headers" || fail "503 without Retry-After"
expect_status "still serving after the errors" 200 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$IMG1"

# ---- a burst of 64 concurrent classify requests: only 200 or 503 (queue of 8), no hang ----
pids=
for i in $(seq 1 64); do
  curl -s -m 120 -o /dev/null -w '%{http_code}\n' -H 'Content-Type: image/jpeg' --data-binary "@$IMG1" \
    "$BASE/v1/models/resnet18_fp32/classify" >"$TMP/burst.$i" &
  pids="$pids $!"
done
wait $pids
cat "$TMP"/burst.* >"$TMP/burst"
check "burst: 64 answers, only 200/503, some of each kind served" \
  $PY - "$TMP/burst" <<'PY'
import collections, sys
c = collections.Counter(l.strip() for l in open(sys.argv[1]))
print("   burst statuses:", dict(c))
assert sum(c.values()) == 64 and set(c) <= {"200", "503"} and c["200"] >= 8, c
PY
expect_status "alive after the burst" 200 GET /v2/health/live

# ---- a job over the dev images (all 600) completes and is in /v1/runs with its images and per-class rows ----
submit '{"model_config": "resnet18_fp32", "dataset": "dev", "limit": '$N'}'
A=$JOB
wait_job $A 'j["status"] == "running" and j["done"] > 0 and j["eta_seconds"] is not None and j["images_per_second"] > 0' 120 &&
  echo "ok: job $A reports progress, rate and ETA"
expect_status "classify while a job runs" 200 POST /v1/models/resnet18_fp32/classify -H 'Content-Type: image/jpeg' --data-binary "@$IMG1"
wait_job $A 'j["status"] == "done"' 300
expect_status "runs of resnet18_fp32" 200 GET '/v1/runs?model_config=resnet18_fp32&limit=5'
cp "$TMP/body" "$TMP/runs.json"
expect_status "run $A" 200 GET /v1/runs/$A
cp "$TMP/body" "$TMP/runA.json"
expect_status "run $A predictions" 200 GET /v1/runs/$A/predictions
cp "$TMP/body" "$TMP/predA.csv"
check "run $A: $N images, per-class rows, predictions = PyTorch goldens" \
  $PY - "$TMP" $A "$QE_SHARED/golden/fp32/top5-resnet18.csv" $N <<'PY'
import csv, json, sys
d, a, gold, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
runs = json.load(open(f"{d}/runs.json"))["runs"]
assert runs[0]["id"] == a and all(r["model_config"] == "resnet18_fp32" for r in runs), runs
r = json.load(open(f"{d}/runA.json"))
assert r["status"] == "done" and r["images"] == n == r["images_total"] and r["source"] == "server", r
assert r["dataset"] == "dev" and r["images_per_second"] > 0 and r["build_id"]
pc = r["per_class"]
assert len(pc) == n // 3 and all(c["total"] == 3 and c["wnid"] for c in pc)    # 3 images per class
names = {c["wnid"]: c["name"] for c in pc}                                        # short labels, as classify's
assert all(v and "," not in v for v in names.values()) and names.get("n01440764", "tench") == "tench", names
assert sum(c["correct1"] for c in pc) == r["correct1"] and sum(c["correct5"] for c in pc) == r["correct5"]
ours = list(csv.DictReader(open(f"{d}/predA.csv")))
g = list(csv.DictReader(open(gold)))[:n]
assert len(ours) == n == len(g)
for i, (o, e) in enumerate(zip(ours, g)):
    assert int(o["index"]) == i and o["path"] == e["path"] and o["label"] == e["label"], (o, e)
    if float(e["margin"]) >= 1e-4 * abs(float(e["logit1"])):
        assert o["pred1"] == e["pred1"], (o, e)
top5 = sum(1 for o in ours if o["label"] in [o["pred%d" % k] for k in range(1, 6)])
assert top5 == r["correct5"], (top5, r["correct5"])
PY

# ---- quantized job: its predictions equal classify's for the same images ----
submit '{"model_config": "resnet18_w8a8", "dataset": "dev", "limit": 12}'
Q8=$JOB
wait_job $Q8 'j["status"] == "done"' 120
http GET /v1/runs/$Q8/predictions
cp "$TMP/body" "$TMP/predQ.csv"
: >"$TMP/srv-q.jsonl"
for f in $(ls "$DEV"/*/*.JPEG | head -12); do
  http POST /v1/models/resnet18_w8a8/classify -H 'Content-Type: image/jpeg' --data-binary "@$f"
  cat "$TMP/body" >>"$TMP/srv-q.jsonl"
done
check "w8a8 job predictions = w8a8 classify" \
  $PY - "$TMP/predQ.csv" "$TMP/srv-q.jsonl" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cls = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == 12 == len(cls)
for r, c in zip(rows, cls):
    assert [int(r["pred%d" % k]) for k in range(1, 6)] == [t["index"] for t in c["top5"]], (r, c)
PY

# ---- metrics (before any restart resets the counters) ----
expect_status "metrics" 200 GET /metrics
check "metrics: requests, latency, batch sizes, images, queue depth" \
  $PY - "$TMP/body" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def val(pat):
    m = re.search("^" + pat + r" ([0-9.e+]+)$", t, re.M)
    assert m, pat
    return float(m.group(1))
assert val(r'quanteval_http_requests_total\{endpoint="classify",model="resnet18_fp32",code="200"\}') >= 8
assert val(r'quanteval_http_requests_total\{endpoint="classify",model="resnet18_fp32",code="503"\}') >= 1
assert val(r'quanteval_http_request_duration_seconds_count\{endpoint="classify",model="resnet18_w8a8"\}') >= 1
assert val(r'quanteval_batch_size_count\{model="resnet18_fp32"\}') >= 1
assert val(r'quanteval_images_evaluated_total\{source="job",model="resnet18_fp32"\}') > 0
assert val(r'quanteval_classify_queue_depth\{model="resnet18_fp32"\}') == 0
assert val(r'quanteval_model_ready\{model="resnet50_fp32",status="unavailable"\}') == 0
assert "# TYPE quanteval_http_request_duration_seconds histogram" in t
PY

# ---- a job with its own calibration = quanteval eval with the same calibration settings ----
submit '{"model_config": "resnet18_w8a8", "dataset": "dev", "limit": 6, "calib": {"dataset": "samples", "per_class": 1}}'
CJ=$JOB
$Q eval --model-config resnet18_w8a8 --weights "$R18" --dataset-path "$DEV" --limit 6 --calib-path "$QE_SRC/configs/samples" \
  --calib-per-class 1 --no-fp32 --no-db --quiet --predictions-out "$TMP/predCJ-cli.csv" >/dev/null 2>"$TMP/cli.err" ||
  fail "quanteval eval with 1 calibration image per class: $(cat "$TMP/cli.err")"
wait_job $CJ 'j["status"] == "done"' 120
http GET /v1/runs/$CJ/predictions
check "job calibrated on 1 image per class = quanteval eval --calib-per-class 1" \
  $PY - "$TMP/body" "$TMP/predCJ-cli.csv" <<'PY'
import csv, sys
a = [[r["path"]] + [r["pred%d" % k] for k in range(1, 6)] for r in csv.DictReader(open(sys.argv[1]))]
b = [[r["path"]] + [r["pred%d" % k] for k in range(1, 6)] for r in csv.DictReader(open(sys.argv[2]))]
assert len(a) == 6 and a == b, (a, b)
PY
http GET /v1/runs/$CJ
[ "$(jget "$TMP/body" '"per_class=1" in j["calib"]')" = True ] || fail "run $CJ does not record its calibration: $(head -c 400 "$TMP/body")"

# ---- kill -9 in the middle of a job, restart: it resumes, and ends equal to the uninterrupted run ----
submit '{"model_config": "resnet18_fp32", "dataset": "dev", "limit": '$N'}'
B=$JOB
wait_job $B 'j["status"] == "running" and '$((N / 6))' <= j["done"]' 120
stop_server 9
start_server
grep -q 'interrupted job will resume' "$LOG" || fail "restart did not announce the resumed job"
wait_ready
expect_status "encodings from the database cache after a restart" 200 GET /v1/models/resnet18_w8a8
[ "$(jget "$TMP/body" 'j["encodings_source"].startswith("cache")')" = True ] || fail "w8a8 recalibrated: $(cat "$TMP/body")"
wait_job $B 'j["status"] == "done"' 300
grep -qE "job $B: .*resuming at image [1-9]" "$LOG" || fail "job $B did not resume midway: $(grep "job $B" "$LOG")"
http GET /v1/runs/$B; cp "$TMP/body" "$TMP/runB.json"
http GET /v1/runs/$B/predictions; cp "$TMP/body" "$TMP/predB.csv"
http GET /v1/jobs/$B; cp "$TMP/body" "$TMP/jobB.json"
check "resumed run $B = uninterrupted run $A (counts, per class, predictions)" \
  $PY - "$TMP" <<'PY'
import json, sys
d = sys.argv[1]
a, b = json.load(open(f"{d}/runA.json")), json.load(open(f"{d}/runB.json"))
for k in ("images", "images_total", "correct1", "correct5", "top1", "top5", "per_class", "model_config", "dataset"):
    assert a[k] == b[k], (k, a[k], b[k])
assert open(f"{d}/predA.csv").read() == open(f"{d}/predB.csv").read()
assert json.load(open(f"{d}/jobB.json"))["attempts"] == 2
PY

# ---- cancel: token enforced, the job stops and stays cancelled ----
submit '{"model_config": "resnet18_fp32", "dataset": "dev"}'
C=$JOB
wait_job $C 'j["status"] == "running"' 120
expect_status "cancel with a wrong token" 401 DELETE /v1/jobs/$C -H 'Authorization: Bearer wrong'
expect_status "cancel" 200 DELETE /v1/jobs/$C -H "Authorization: Bearer $TOKEN"
[ "$(jget "$TMP/body" 'j["status"] == "cancelled" and j["cancelled"]')" = True ] || fail "cancel reply: $(cat "$TMP/body")"
sleep 2
http GET /v1/jobs/$C
[ "$(jget "$TMP/body" 'j["status"] == "cancelled" and j["done"] < 600')" = True ] || fail "cancelled job went on: $(cat "$TMP/body")"
expect_status "jobs list" 200 GET /v1/jobs
[ "$(jget "$TMP/body" "[x['id'] for x in j['jobs']][:5] == [$C, $B, $CJ, $Q8, $A]")" = True ] || fail "jobs list order: $(head -c 300 "$TMP/body")"

# ---- SIGTERM during a job: exit 0, the job is checkpointed and completes after a restart ----
submit '{"model_config": "resnet18_fp32", "dataset": "dev", "limit": '$ND'}'
D=$JOB
wait_job $D 'j["status"] == "running" and j["done"] >= 32' 120
stop_server TERM
check "SIGTERM: exit status 0" [ "$RC" = 0 ]
grep -q "job $D checkpointed" "$LOG" || fail "job $D not checkpointed: $(tail -5 "$LOG")"
start_server
wait_ready
wait_job $D 'j["status"] == "done"' 300
http GET /v1/runs/$D/predictions
check "job $D resumed after SIGTERM: $ND predictions = the first $ND of run $A" \
  $PY - "$TMP/predA.csv" "$TMP/body" $ND <<'PY'
import sys
a = open(sys.argv[1]).read().splitlines()
d = open(sys.argv[2]).read().splitlines()
n = int(sys.argv[3])
assert len(d) == n + 1 and d == a[:n + 1]
PY
stop_server INT
check "SIGINT: exit status 0" [ "$RC" = 0 ]
finish
