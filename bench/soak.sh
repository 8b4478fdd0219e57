#!/usr/bin/env bash
# RSS soak (issue 7, target 5): the gateway at 50 % of its sustained maximum for N minutes, its
# RSS sampled every second into a CSV; reports start / end / max RSS and the slope of a
# least-squares line over the second half (the first half holds the warm-up: the de-duplication
# window fills up to dedup.max_entries, allocator arenas grow to their working size).
#   bench/soak.sh [minutes, default 10] [http|mqtt, default http] [rate, records/s]
# Without a rate, a 15 s closed-loop run measures the sustained maximum first and the soak runs
# at half of it. HTTP: telegate-sim, 64 connections × 250 records per request. MQTT:
# telegate-mqtt-bench, 1000 devices, QoS 1, 20 unacked each (bench/latency_at_half.sh's loads).
# "Flat": the second half's fitted growth (slope × its duration) is within noise, i.e. at most
# max(3 × the standard deviation of the samples around the line, 1 % of the mean RSS).
# Output: the CSV path ($TELEGATE_SOAK_CSV, default soak-rss.csv in the work directory, kept),
# one JSON line with the figures. TELEGATE_BENCH_BUILD selects the build (default build/release).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
minutes=${1:-10}
protocol=${2:-http}
rate=${3:-}
connections=64
batch=250
mqtt_connections=1000
mqtt_window=20
devices=$mqtt_connections
csv=${TELEGATE_SOAK_CSV:-$PWD/soak-rss.csv}
source bench/gateway_lib.sh
bench_setup
ulimit -n "$(ulimit -Hn)"
mqtt_port=$(free_port tcp)
start_gateway soak "mqtt: {enabled: true, address: 127.0.0.1, port: $mqtt_port}"
echo "# machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); build $build; broker $bootstrap"

load() {  # records [rate]; prints the load generator's JSON summary
  local records=$1 at=${2:-}
  if [[ $protocol == http ]]; then
    $build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$connections" \
      --connections "$connections" --batch "$batch" --records "$records" ${at:+--rate "$at"} || true
  else
    $build/bench/telegate-mqtt-bench publish --port "$mqtt_port" --connections "$mqtt_connections" \
      --devices "$mqtt_connections" --tenant sim --qos 1 --window "$mqtt_window" --records "$records" \
      ${at:+--rate "$at"} || true
  fi
}
rate_of() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(d.get('records_per_second', d.get('records_per_s'))))" "$1"; }

if [[ -z $rate ]]; then
  load 20000 >/dev/null  # warm-up: topic creation, producers
  probe=$(load 1000000 | tail -1)  # ~15 s at this machine's rates; only its rate is used
  echo "{\"run\":\"closed-loop maximum\",\"result\":$probe}"
  rate=$(($(rate_of "$probe") / 2))
fi

echo "t_s,rss_kib" >"$csv"
duration=$((minutes * 60))
load $((rate * duration)) "$rate" >"$work/load.json" &
load_pid=$!
started=$(date +%s)
while kill -0 "$load_pid" 2>/dev/null && [[ $(($(date +%s) - started)) -le $((duration + 60)) ]]; do
  echo "$(($(date +%s) - started)),$(awk '/VmRSS/ {print $2}' "/proc/$gateway_pid/status")" >>"$csv"
  sleep 1
done
wait "$load_pid" || true
echo "{\"run\":\"soak at 50 %\",\"protocol\":\"$protocol\",\"rate\":$rate,\"result\":$(tail -1 "$work/load.json")}"

python3 - "$csv" "$protocol" "$rate" <<'PY'
import csv, json, statistics, sys
rows = [(float(r["t_s"]), float(r["rss_kib"]) * 1024) for r in csv.DictReader(open(sys.argv[1]))]
half = rows[len(rows) // 2:]
ts, rss = [t for t, _ in half], [r for _, r in half]
mt, mr = statistics.fmean(ts), statistics.fmean(rss)
slope = sum((t - mt) * (r - mr) for t, r in half) / sum((t - mt) ** 2 for t in ts)  # bytes/s
residual = statistics.pstdev([r - (mr + slope * (t - mt)) for t, r in half])
growth = slope * (ts[-1] - ts[0])
noise = max(3 * residual, 0.01 * mr)
mib = lambda b: round(b / 2**20, 1)
print(json.dumps({"summary": "soak", "protocol": sys.argv[2], "rate": int(sys.argv[3]), "samples": len(rows),
                  "rss_mib": {"start": mib(rows[0][1]), "end": mib(rows[-1][1]), "max": mib(max(r for _, r in rows))},
                  "second_half_slope_bytes_per_min": round(slope * 60), "second_half_growth_mib": mib(growth),
                  "noise_mib": mib(noise), "flat": abs(growth) <= noise, "csv": sys.argv[1]}))
PY
