#!/bin/bash
# Load test of `quanteval serve` classify with wrk (Debian package `wrk`): CONNECTIONS connections
# for DURATION seconds, posting the bundled sample JPEGs in turn, reported as throughput,
# p50/p99 latency and errors, in three settings:
#   1. dynamic batching (max_batch 8), no job running
#   2. the same while an evaluation job runs on the same model
#   3. batch size 1 (max_batch 1), no job: the images/s dynamic batching gains
# and compared with `quanteval eval`'s images/s for the same model (the target: at least 80% of
# it; p99 under 1 s without a job, under 2 s with one).
#
# usage: bench/load_classify.sh [BUILD_DIR]     (default build/)
# env:   MODEL (resnet18_w8a8), WEIGHTS (checkpoint; default: the config's file or synthetic),
#        DATASET (job and eval images; default ../shared/data/dev), DURATION (30), CONNECTIONS (16),
#        THREADS (compute threads; default all cores), EVAL_IMAGES (images for the eval baseline, 192)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
Q=$BUILD/quanteval
MODEL=${MODEL:-resnet18_w8a8}
DATASET=${DATASET:-$(cd .. && pwd)/shared/data/dev}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-16}
EVAL_IMAGES=${EVAL_IMAGES:-192}
SAMPLES=$(pwd)/configs/samples
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
[ -x "$Q" ] || { echo "$Q not built" >&2; exit 2; }
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
THREADS_OPT=${THREADS:+--threads $THREADS}
WEIGHTS_JSON=${WEIGHTS:+, \"weights\": \"$WEIGHTS\"}

# wrk script: rotate through the sample images; print one machine-readable line at the end.
cat >"$TMP/classify.lua" <<EOF
local reqs, i = {}, 0
for path in io.popen('ls $SAMPLES/*/*'):lines() do
  local f = io.open(path, "rb")
  reqs[#reqs + 1] = wrk.format("POST", "/v1/models/$MODEL/classify", {["Content-Type"] = "image/jpeg"}, f:read("*all"))
  f:close()
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f errors=%d\n", s.requests,
    s.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

start_server() {  # start_server MAX_BATCH
  cat >"$TMP/server.json" <<EOF
{"models": [{"config": "$MODEL"$WEIGHTS_JSON}], "datasets": {"bench": "$DATASET"},
 "limits": {"max_batch": $1, "max_delay_ms": 10, "queue": 256}}
EOF
  : >"$TMP/serve.log"
  $Q serve --config "$TMP/server.json" --listen 127.0.0.1:0 --db "$TMP/bench.db" $THREADS_OPT 2>"$TMP/serve.log" &
  PID=$!
  for _ in $(seq 1 600); do
    PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$TMP/serve.log" | sed 's/.*://' || true)
    [ -n "$PORT" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/health/ready")" = 200 ] && return
    sleep 0.2
  done
  echo "server did not get ready:" >&2; cat "$TMP/serve.log" >&2; exit 1
}

stop_server() { kill "$PID"; wait "$PID" || true; PID=; }

load() {  # load LABEL: runs wrk, prints a report line, sets IPS
  wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s -s "$TMP/classify.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.out"
  line=$(grep '^RESULT' "$TMP/wrk.out")
  eval "$(echo "$line" | sed 's/^RESULT //')"
  IPS=$(awk -v r="$requests" -v s="$seconds" 'BEGIN { printf "%.2f", r / s }')
  printf '%-34s %8s img/s   p50 %7s ms   p99 %7s ms   errors %s\n' "$1" "$IPS" "$p50_ms" "$p99_ms" "$errors"
}

echo "model $MODEL, $CONNECTIONS connections x ${DURATION}s, $(nproc) cores"
$Q eval --model-config "$MODEL" ${WEIGHTS:+--weights "$WEIGHTS"} --dataset-path "$DATASET" --calib-path "$SAMPLES" \
  --limit "$EVAL_IMAGES" --no-fp32 --no-db --json --quiet $THREADS_OPT >"$TMP/eval.json" 2>/dev/null
EVAL_IPS=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["images_per_second"])' "$TMP/eval.json")
printf '%-34s %8s img/s\n' "quanteval eval (batch 16)" "$EVAL_IPS"

start_server 8
load "serve, dynamic batching (max 8)"
BATCHED=$IPS
# Three jobs queued back to back, so that one runs for the whole window; the job's images/s
# during the window comes from the images-evaluated counter.
job_images() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^quanteval_images_evaluated_total\{source="job"/ { n += $2 } END { print n + 0 }'
}
JOBS=
for _ in 1 2 3; do
  curl -s -X POST -d "{\"model_config\": \"$MODEL\", \"dataset\": \"bench\"}" "http://127.0.0.1:$PORT/v1/jobs" >"$TMP/job.json"
  JOBS="$JOBS $(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/job.json")"
done
sleep 2
J0=$(job_images)
load "serve, dynamic batching + a job"
J1=$(job_images)
awk -v n=$((J1 - J0)) -v d="$seconds" 'BEGIN { printf "%-34s %8.2f img/s\n", "  the job meanwhile", n / d }'
for j in $JOBS; do curl -s -X DELETE "http://127.0.0.1:$PORT/v1/jobs/$j" >/dev/null; done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^quanteval_batch_size_(sum|count)' >"$TMP/batch.txt"
stop_server
awk '/_sum/ { s = $2 } /_count/ { c = $2 } END { if (c) printf "%-34s %8.2f images per forward pass\n", "  mean classify batch", s / c }' "$TMP/batch.txt"

start_server 1
load "serve, batch size 1"
SINGLE=$IPS
stop_server

awk -v b="$BATCHED" -v s="$SINGLE" -v e="$EVAL_IPS" 'BEGIN {
  printf "dynamic batching gain: %+.2f img/s (%.2fx batch size 1)\n", b - s, (s > 0 ? b / s : 0)
  printf "serve / eval throughput: %.0f%% (target >= 80%%)\n", (e > 0 ? 100 * b / e : 0) }'
