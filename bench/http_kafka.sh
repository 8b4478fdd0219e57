#!/usr/bin/env bash
# HTTP → Kafka end to end on this machine, next to a plain librdkafka producer baseline in the
# same run. Starts the real broker (scripts/kafka/kafka.sh), a release telegate and telegate-sim.
#   bench/http_kafka.sh [records] [batch] [connections] [devices]
# Prints one JSON object per measurement and a summary line for docs/benchmarks.md.
# TELEGATE_BENCH_PERF=FILE also records a perf profile of the gateway during the measured run
# and prints the gateway's CPU per record by stage (bench/perf_stages.py).
# TELEGATE_BENCH_LIBRDKAFKA='key: "value", …' adds librdkafka settings to the gateway's sink and
# to the baseline producer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
records=${1:-1000000}
batch=${2:-250}
connections=${3:-64}
devices=${4:-64}
source bench/gateway_lib.sh
bench_setup
start_gateway bench

# Warm-up: topic creation, producer and connection set-up are not what we measure.
$build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
  --connections "$connections" --batch "$batch" --records 20000 >/dev/null || true

cpu_before=$(cpu_seconds $gateway_pid)
switches_before=$(context_switches $gateway_pid)
commits_before=$(committed_transactions)
if [[ -n ${TELEGATE_BENCH_PERF:-} ]]; then perf record -g -o "$TELEGATE_BENCH_PERF" -p $gateway_pid & perf_pid=$!; fi
# Closed loop: throughput needs connections × batch well above rate × commit interval in flight.
# telegate-sim exits 1 when not every record was accepted; the summary says which outcomes.
sim=$($build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
  --connections "$connections" --batch "$batch" --records "$records" || true)
cpu_after=$(cpu_seconds $gateway_pid)
switches=$(($(context_switches $gateway_pid) - switches_before))
commits=$(($(committed_transactions) - commits_before))
if [[ -n ${TELEGATE_BENCH_PERF:-} ]]; then kill -INT $perf_pid; wait $perf_pid || true; fi
echo "$sim"
kill -TERM $gateway_pid; wait $gateway_pid || true

# The baseline gets the gateway's librdkafka settings too: 'a: "1", b: "2"' → a=1,b=2.
librdkafka=$(python3 -c 'import re, sys; print(",".join(f"{k}={v}" for k, v in re.findall(r"([\w.]+)\s*:\s*\"?([^\",]*)\"?", sys.argv[1])))' \
  "${TELEGATE_BENCH_LIBRDKAFKA:-}")
baseline=$($build/bench/telegate-bench kafka-baseline --bootstrap "$bootstrap" --records "$records" \
  --key-run "$batch" --librdkafka "$librdkafka")
echo "$baseline"

python3 - "$sim" "$baseline" "$cpu_before" "$cpu_after" "$records" "$batch" "$connections" "$commits" "$switches" <<'PY'
import json, sys
sim, base = json.loads(sys.argv[1]), json.loads(sys.argv[2])
commits = int(sys.argv[8])
cpu = float(sys.argv[4]) - float(sys.argv[3])
records = int(sys.argv[5])
print(json.dumps({
  "benchmark": "http-kafka", "records": records, "batch": int(sys.argv[6]), "connections": int(sys.argv[7]),
  "gateway_records_per_second": sim["records_per_second"],
  "baseline_producer_records_per_second": base["records_per_second"],
  "ratio_to_baseline": round(sim["records_per_second"] / base["records_per_second"], 3),
  "gateway_cpu_us_per_record": round(cpu * 1e6 / sim["accepted"], 3) if sim["accepted"] else None,
  "baseline_producer_cpu_us_per_record": base.get("cpu_us_per_record"),
  "commits_per_second": round(commits / sim["seconds"], 1),
  # Threads that exited during the run (committers) are not counted: a lower bound.
  "context_switches_per_request": round(int(sys.argv[9]) * int(sys.argv[6]) / records, 2),
  "ack_latency_ms": sim["ack_latency_ms"], "outcomes": sim["outcomes"]}))
PY
if [[ -n ${TELEGATE_BENCH_PERF:-} ]]; then
  cpu_us=$(python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) * 1e6 / float(sys.argv[3]))" \
    "$cpu_before" "$cpu_after" "$records")
  bench/perf_stages.py "$TELEGATE_BENCH_PERF" "$cpu_us"
fi
