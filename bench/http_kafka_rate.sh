#!/usr/bin/env bash
# HTTP → Kafka open loop at a fixed rate: what each transaction costs when the load does not
# depend on the ack latency. (bench/http_kafka.sh's closed loop finishes sooner the shorter the
# acks take, so a longer commit interval shows there as lost throughput, not as CPU.)
#   bench/http_kafka_rate.sh [records/s] [seconds] [batch] [connections]
# Prints one JSON object: the gateway's, the simulator's and the broker's CPU per record, Kafka
# commits per second and records per commit, minor page faults, and the ack latency. TELEGATE_BENCH_KAFKA
# ('key: value, …') adds sink.kafka settings, e.g. 'transaction_min_interval_ms: 25'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gateway_lib.sh
rate=${1:-10000}
seconds=${2:-10}
batch=${3:-250}
connections=${4:-64}
records=$((rate * seconds))
http_bench_start "$records" "$batch" "$connections" "$connections"

cpu_before=$(cpu_seconds $gateway_pid)
broker_before=$(cpu_seconds $kafka_pid)
commits_before=$(committed_transactions)
faults_before=$(minor_faults $gateway_pid)
timed_http_sim "$records" --rate "$rate"
gateway_cpu=$(cpu_since "$cpu_before" $gateway_pid)
broker_cpu=$(cpu_since "$broker_before" $kafka_pid)
commits=$(($(committed_transactions) - commits_before))
faults=$(($(minor_faults $gateway_pid) - faults_before))

python3 - "$sim" "$rate" "$batch" "$connections" "$gateway_cpu" "$sim_cpu" "$broker_cpu" "$commits" \
  "$(cut -d' ' -f1 /proc/loadavg)" "$faults" <<'PY'
import json, sys
sim = json.loads(sys.argv[1])
accepted, commits, seconds = sim["accepted"], int(sys.argv[8]), sim["seconds"]
def per_record(cpu_seconds):
  return round(float(cpu_seconds) * 1e6 / accepted, 2) if accepted else None
print(json.dumps({
  "benchmark": "http-kafka-rate", "rate": int(sys.argv[2]), "batch": int(sys.argv[3]), "connections": int(sys.argv[4]),
  "records_per_second": sim["records_per_second"],
  "gateway_cpu_us_per_record": per_record(sys.argv[5]), "sim_cpu_us_per_record": per_record(sys.argv[6]),
  "broker_cpu_us_per_record": per_record(sys.argv[7]),
  "commits_per_second": round(commits / seconds, 1), "records_per_commit": round(accepted / commits) if commits else None,
  # The whole process's, exited threads' included (docs/benchmarks.md §18.alloc).
  "minor_faults_per_second": round(int(sys.argv[10]) / seconds),
  "minor_faults_per_commit": round(int(sys.argv[10]) / commits) if commits else None,
  "ack_latency_ms": sim["ack_latency_ms"], "outcomes": sim["outcomes"], "load": float(sys.argv[9])}))
PY
