#!/usr/bin/env bash
# HTTP → Kafka end to end on this machine, next to a plain librdkafka producer baseline in the
# same run. Uses the broker at TELEGATE_KAFKA_BOOTSTRAP if set, else starts the real broker
# (scripts/kafka/kafka.sh); then a release telegate and telegate-sim.
#   bench/http_kafka.sh [records] [batch] [connections] [devices]
# Prints one JSON object per measurement and a summary line for docs/benchmarks.md.
# TELEGATE_BENCH_PERF=FILE also records a perf profile of the gateway during the measured run
# and prints the gateway's CPU per record by stage (bench/perf_stages.py).
# TELEGATE_BENCH_PERF_OPTS replaces perf record's options (default -g), e.g. '-e page-faults -g'
# or '--call-graph dwarf'; the stage table is printed only for the default CPU profile.
# TELEGATE_BENCH_LIBRDKAFKA='key: "value", …' adds librdkafka settings to the gateway's sink and
# to the baseline producer. TELEGATE_BENCH_PARTITIONS (default 16) is both topics' partition count
# (bench/gateway_lib.sh).
# TELEGATE_BENCH_MATCHED_BASELINE=1 also runs the plain producer with the gateway's own average
# transaction size in this run (records / commits) and prints the ratio to it: how much of the
# gap to the baseline (50 000 records per transaction, the sink's maximum) is the closed loop's
# transaction size, which its records in flight (connections × batch) bound, rather than the
# gateway's work per record.
# CPU per record is printed for each process sharing the cores: the gateway, the load generator
# (telegate-sim) and the broker, and for the baseline its producer and the broker: on a
# CPU-bound box every µs the load generator spends is taken from the other two.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gateway_lib.sh
http_bench_start "$@"

cpu_before=$(cpu_seconds $gateway_pid)
broker_before=$(cpu_seconds $kafka_pid)
switches_before=$(context_switches $gateway_pid)
faults_before=$(minor_faults $gateway_pid)
commits_before=$(committed_transactions)
if [[ -n ${TELEGATE_BENCH_PERF:-} ]]; then perf record ${TELEGATE_BENCH_PERF_OPTS:--g} -o "$TELEGATE_BENCH_PERF" -p $gateway_pid & perf_pid=$!; fi
# Closed loop: throughput needs connections × batch well above rate × commit interval in flight.
# telegate-sim exits 1 when not every record was accepted; the summary says which outcomes.
timed_http_sim "$records"
cpu_after=$(cpu_seconds $gateway_pid)
broker_cpu=$(cpu_since "$broker_before" $kafka_pid)
switches=$(($(context_switches $gateway_pid) - switches_before))
faults=$(($(minor_faults $gateway_pid) - faults_before))
commits=$(($(committed_transactions) - commits_before))
if [[ -n ${TELEGATE_BENCH_PERF:-} ]]; then kill -INT $perf_pid; wait $perf_pid || true; fi
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gateway_pid/status")
echo "$sim"
kill -TERM $gateway_pid; wait $gateway_pid || true

broker_before=$(cpu_seconds $kafka_pid)
# The baseline gets the gateway's librdkafka settings too: 'a: "1", b: "2"' → a=1,b=2.
librdkafka=$(python3 -c 'import re, sys; print(",".join(f"{k}={v}" for k, v in re.findall(r"([\w.]+)\s*:\s*\"?([^\",]*)\"?", sys.argv[1])))' \
  "${TELEGATE_BENCH_LIBRDKAFKA:-}")
baseline=$($build/bench/telegate-bench kafka-baseline --bootstrap "$bootstrap" --records "$records" \
  --key-run "$batch" --librdkafka "$librdkafka" --partitions "$bench_partitions")
baseline_broker_cpu=$(cpu_since "$broker_before" $kafka_pid)
echo "$baseline"
matched='{}'
if [[ ${TELEGATE_BENCH_MATCHED_BASELINE:-0} == 1 && $commits -gt 0 ]]; then
  matched=$($build/bench/telegate-bench kafka-baseline --bootstrap "$bootstrap" --records "$records" \
    --key-run "$batch" --librdkafka "$librdkafka" --partitions "$bench_partitions" \
    --transaction-records $((records / commits)))
  echo "$matched"
fi

python3 - "$sim" "$baseline" "$cpu_before" "$cpu_after" "$records" "$batch" "$connections" "$commits" "$switches" \
  "$sim_cpu" "$broker_cpu" "$baseline_broker_cpu" "$faults" "$rss_kib" "$bench_partitions" "$matched" <<'PY'
import json, sys
sim, base, matched = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[16])
commits = int(sys.argv[8])
cpu = float(sys.argv[4]) - float(sys.argv[3])
records = int(sys.argv[5])
def per_record(seconds, count):
  return round(float(seconds) * 1e6 / count, 3) if count else None
print(json.dumps({
  "benchmark": "http-kafka", "records": records, "batch": int(sys.argv[6]), "connections": int(sys.argv[7]),
  "partitions": int(sys.argv[15]) or "broker default",
  "gateway_records_per_second": sim["records_per_second"],
  "baseline_producer_records_per_second": base["records_per_second"],
  "ratio_to_baseline": round(sim["records_per_second"] / base["records_per_second"], 3),
  **({"matched_baseline_transaction_records": matched["transaction_records"],
      "matched_baseline_records_per_second": matched["records_per_second"],
      "ratio_to_matched_baseline": round(sim["records_per_second"] / matched["records_per_second"], 3),
      "matched_baseline_producer_cpu_us_per_record": matched.get("cpu_us_per_record")} if matched else {}),
  "gateway_cpu_us_per_record": per_record(cpu, sim["accepted"]),
  "baseline_producer_cpu_us_per_record": base.get("cpu_us_per_record"),
  "sim_cpu_us_per_record": per_record(sys.argv[10], sim["accepted"]),
  "broker_cpu_us_per_record": per_record(sys.argv[11], sim["accepted"]),
  "baseline_broker_cpu_us_per_record": per_record(sys.argv[12], records),
  "commits_per_second": round(commits / sim["seconds"], 1),
  # Threads that exited during the run (committers) are not counted: a lower bound.
  "context_switches_per_request": round(int(sys.argv[9]) * int(sys.argv[6]) / records, 2),
  # Minor page faults: memory touched for the first time, or again after jemalloc or a thread
  # exit gave it back to the kernel (docs/benchmarks.md §18.alloc).
  "minor_faults_per_second": round(int(sys.argv[13]) / sim["seconds"]),
  "minor_faults_per_request": round(int(sys.argv[13]) * int(sys.argv[6]) / records, 3),
  "gateway_rss_mib_at_end": round(int(sys.argv[14]) / 1024, 1),
  "ack_latency_ms": sim["ack_latency_ms"], "outcomes": sim["outcomes"]}))
PY
if [[ -n ${TELEGATE_BENCH_PERF:-} && -z ${TELEGATE_BENCH_PERF_OPTS:-} ]]; then
  cpu_us=$(python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) * 1e6 / float(sys.argv[3]))" \
    "$cpu_before" "$cpu_after" "$records")
  bench/perf_stages.py "$TELEGATE_BENCH_PERF" "$cpu_us"
fi
