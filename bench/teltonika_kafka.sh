#!/usr/bin/env bash
# Teltonika trackers over TCP → Kafka next to HTTP (JSON) → Kafka, same gateway, broker and run.
# Each AVL record with a GPS fix becomes 2 canonical records (location + I/O readings), so a
# frame of 50 AVL records is compared with HTTP requests of 100 records.
#   bench/teltonika_kafka.sh [connections] [frames per connection] [AVL records per frame]
# TELEGATE_BENCH_BUILD=build/dev measures an existing dev build instead of building release.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
connections=${1:-64}
frames=${2:-20}
avl=${3:-50}
devices=$connections
source bench/gateway_lib.sh
bench_setup
tcp_port=$(free_port tcp)
device_types="[{name: tracker, codec: json}, {name: fmb, codec: teltonika}]"
extra_tenants=$(printf '  - name: fleet\n    devices:\n'
  for i in $(seq 0 $((connections - 1))); do
    printf '      - {id: "%d", device_type: fmb, token_sha256: %064x}\n' $((350000000000000 + i)) $((i + 1))
  done)
start_gateway bench-teltonika "tracker: {teltonika: {enabled: true, bind: 127.0.0.1, tcp_port: $tcp_port, tenant: fleet}}"

records=$((connections * frames * avl * 2))
cpu0=$(cpu_seconds $gateway_pid)
http=$($build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
  --connections "$connections" --batch $((avl * 2)) --records "$records" || true)
cpu1=$(cpu_seconds $gateway_pid)
tcp=$(python3 bench/teltonika_load.py --port "$tcp_port" --connections "$connections" --frames "$frames" --records "$avl")
cpu2=$(cpu_seconds $gateway_pid)
echo "$http"
echo "$tcp"
kill -TERM $gateway_pid; wait $gateway_pid || true
python3 - "$http" "$tcp" "$cpu0" "$cpu1" "$cpu2" <<'PY'
import json, sys
http, tcp = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c0, c1, c2 = map(float, sys.argv[3:6])
tcp_records = tcp["records_per_second"] and tcp["frames_acked"] * tcp["avl_records_per_frame"] * 2
print(json.dumps({"benchmark": "teltonika-vs-http-kafka",
  "teltonika_records_per_second": tcp["records_per_second"], "http_records_per_second": http["records_per_second"],
  "ratio": round(tcp["records_per_second"] / http["records_per_second"], 2),
  "teltonika_ack_latency_ms": tcp["ack_latency_ms"], "http_ack_latency_ms": http["ack_latency_ms"],
  "teltonika_gateway_cpu_us_per_record": round((c2 - c1) * 1e6 / tcp_records, 2) if tcp_records else None,
  "http_gateway_cpu_us_per_record": round((c1 - c0) * 1e6 / http["accepted"], 2) if http["accepted"] else None}))
PY
