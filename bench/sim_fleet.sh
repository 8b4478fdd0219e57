#!/usr/bin/env bash
# telegate-sim fleets: memory per simulated device (VmRSS before and after the fleet is
# created, in the simulator itself) and an open-loop fleet of 100 000 devices reporting one fix
# each every 60 s to a gateway with the Kafka sink, next to the same fleet closed loop (the
# most this gateway takes at one record per request) measured in the same run. Each request
# waits for its Kafka commit (~100 ms), so one-fix requests need many connections: 256, the
# gateway's default per-source cap, carry at most ~2 500 requests/s.
#   bench/sim_fleet.sh [devices] [report interval s] [seconds] [connections]
# Prints one JSON object per measurement and a summary line for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
devices=${1:-100000}
interval=${2:-60}
seconds=${3:-30}
connections=${4:-256}
source bench/gateway_lib.sh
bench_setup
sim=$build/firmware-sim/telegate-sim

# Nothing is sent (--records 0), so no gateway is needed for the memory figures.
for n in 1000 10000 100000 1000000; do
  $sim http --url http://127.0.0.1:1/ --devices "$n" --records 0 --no-progress |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"measure": "fleet-memory", "devices": d["devices"], "bytes_per_device": d["fleet_rss_bytes_per_device"]}))'
done

start_gateway sim-fleet
run_sim() {  # LABEL [telegate-sim http options…]: the summary, with the simulator's CPU seconds
  local label=$1
  shift
  local summary
  summary=$(/usr/bin/time -f '%U %S' -o "$work/$label.time" $sim http --url "http://127.0.0.1:$port/v1/telemetry" \
    --devices "$devices" --connections "$connections" --batch 1 --records 1000000000 --no-progress "$@" || true)
  python3 - "$label" "$summary" "$(cat "$work/$label.time")" <<'PY'
import json, sys
d = json.loads(sys.argv[2]); user, system = map(float, sys.argv[3].split())
print(json.dumps({"measure": sys.argv[1], "records_per_second": d["records_per_second"], "accepted": d["accepted"],
                  "records": d["records"], "ack_latency_ms": d["ack_latency_ms"], "outcomes": d["outcomes"],
                  "store_and_forward_records": d["store_and_forward_records"],
                  "sim_cpu_us_per_request": round((user + system) / max(d["requests"], 1) * 1e6, 1)}))
PY
}
open=$(run_sim open-loop --report-interval-s "$interval" --duration-s "$seconds")
closed=$(run_sim closed-loop --duration-s 15)
echo "$open"
echo "$closed"
python3 - "$open" "$closed" "$devices" "$interval" <<'PY'
import json, sys
o, c = json.loads(sys.argv[1]), json.loads(sys.argv[2])
offered = int(sys.argv[3]) / float(sys.argv[4])
print(f"summary: {sys.argv[3]} devices every {sys.argv[4]} s: offered {offered:.0f}/s, accepted "
      f"{o['records_per_second']}/s ({o['records_per_second'] / offered:.2f} of offered), p99 {o['ack_latency_ms']['p99']} ms, "
      f"simulator {o['sim_cpu_us_per_request']} µs CPU/request; closed loop {c['records_per_second']}/s "
      f"(open loop = {o['records_per_second'] / c['records_per_second']:.2f} of it)")
PY
