#!/usr/bin/env bash
# HTTP → Kafka open loop at a fixed rate: what each transaction costs when the load does not
# depend on the ack latency. (bench/http_kafka.sh's closed loop finishes sooner the shorter the
# acks take, so a longer commit interval shows there as lost throughput, not as CPU.)
#   bench/http_kafka_rate.sh [records/s] [seconds] [batch] [connections]
# Prints one JSON object: the gateway's, the simulator's and the broker's CPU per record, Kafka
# commits per second and records per commit, and the ack latency. TELEGATE_BENCH_KAFKA
# ('key: value, …') adds sink.kafka settings, e.g. 'transaction_min_interval_ms: 25'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gateway_lib.sh
rate=${1:-10000}
seconds=${2:-10}
batch=${3:-250}
connections=${4:-64}
devices=$connections
records=$((rate * seconds))
bench_setup
start_gateway rate
broker_pid=$(cat "${TELEGATE_KAFKA_DIR:-.cache/kafka}/broker.pid")
http_sim 20000 >/dev/null || true  # warm-up: topic creation and producer set-up

cpu_before=$(cpu_seconds $gateway_pid)
broker_before=$(cpu_seconds $broker_pid)
commits_before=$(committed_transactions)
sim=$( { TIMEFORMAT='%3U %3S'; time http_sim "$records" --rate "$rate" 2>"$work/sim.err" || true; } 2>"$work/sim.time")
cat "$work/sim.err" >&2
gateway_cpu=$(awk -v a="$(cpu_seconds $gateway_pid)" -v b="$cpu_before" 'BEGIN {print a - b}')
broker_cpu=$(awk -v a="$(cpu_seconds $broker_pid)" -v b="$broker_before" 'BEGIN {print a - b}')
commits=$(($(committed_transactions) - commits_before))
sim_cpu=$(awk '{print $1 + $2}' "$work/sim.time")

python3 - "$sim" "$rate" "$batch" "$connections" "$gateway_cpu" "$sim_cpu" "$broker_cpu" "$commits" \
  "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
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
  "ack_latency_ms": sim["ack_latency_ms"], "outcomes": sim["outcomes"], "load": float(sys.argv[9])}))
PY
