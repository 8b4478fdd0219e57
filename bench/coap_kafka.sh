#!/usr/bin/env bash
# CoAP → Kafka next to HTTP → Kafka, against the same gateway and broker in the same run, so the
# two listeners' figures are comparable on a shared, noisy machine.
#   bench/coap_kafka.sh [records] [devices] [coap_batch] [http_batch]
# Prints the two load generators' JSON lines and one summary line for docs/benchmarks.md.
# TELEGATE_BENCH_BUILD=build/dev measures an existing dev build instead of building release.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
records=${1:-200000}
devices=${2:-64}
coap_batch=${3:-4}     # 4 records ≈ 500 bytes: one datagram, no Block1
http_batch=${4:-4}     # the same request size over HTTP, for a like-for-like comparison
source bench/gateway_lib.sh
bench_setup
coap_port=$(free_port udp)
start_gateway bench-coap "coap: {enabled: true, address: 127.0.0.1, port: $coap_port}"

# Warm-up of both paths: topic creation and producer set-up are not what we measure.
$build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
  --connections "$devices" --batch "$http_batch" --records 5000 >/dev/null || true
$build/bench/telegate-bench coap --port "$coap_port" --devices "$devices" --batch "$coap_batch" --records 5000 >/dev/null || true

cpu0=$(cpu_seconds $gateway_pid)
http=$($build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
  --connections "$devices" --batch "$http_batch" --records "$records" || true)
cpu1=$(cpu_seconds $gateway_pid)
coap=$($build/bench/telegate-bench coap --port "$coap_port" --devices "$devices" --batch "$coap_batch" \
  --records "$records" || true)
cpu2=$(cpu_seconds $gateway_pid)
echo "$http"
echo "$coap"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^telegate_coap_(sink_responses|duplicates)' || true
kill -TERM $gateway_pid; wait $gateway_pid || true

python3 - "$http" "$coap" "$cpu0" "$cpu1" "$cpu2" "$records" "$devices" "$coap_batch" "$http_batch" <<'PY'
import json, sys
http, coap = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c0, c1, c2 = map(float, sys.argv[3:6])
def us(cpu, accepted): return round(cpu * 1e6 / accepted, 2) if accepted else None
print(json.dumps({
  "benchmark": "coap-vs-http-kafka", "records": int(sys.argv[6]), "devices": int(sys.argv[7]),
  "coap_batch": int(sys.argv[8]), "http_batch": int(sys.argv[9]),
  "coap_records_per_second": coap["records_per_second"], "http_records_per_second": http["records_per_second"],
  "coap_ack_latency_ms": coap["ack_latency_ms"], "http_ack_latency_ms": http["ack_latency_ms"],
  "coap_gateway_cpu_us_per_record": us(c2 - c1, coap["accepted"]),
  "http_gateway_cpu_us_per_record": us(c1 - c0, http["accepted"]),
  "coap_outcomes": coap["outcomes"], "http_outcomes": http["outcomes"]}))
PY
