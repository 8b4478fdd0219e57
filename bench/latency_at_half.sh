#!/usr/bin/env bash
# Ack latency at 50 % of the sustained maximum (issue 7, target 4), for HTTP and MQTT, with the
# gateway's shipped defaults (Kafka sink: group commit, transaction_min/max_interval_ms 10/100;
# mqtt.receive_maximum); TELEGATE_BENCH_KAFKA ('key: value, …') overrides sink.kafka settings,
# e.g. 'transaction_min_interval_ms: 100' for the fixed 100 ms interval of before group commit.
# For each protocol: first the sustained maximum, closed loop (the baseline: its rate and its
# latency), then open loop at half that rate, where latency is what a device waits when the
# gateway is not saturated.
#   bench/latency_at_half.sh [http|mqtt|both] [seconds of the open-loop run, default 30]
# HTTP: telegate-sim, $HTTP_CONNECTIONS keep-alive connections (64) × $HTTP_BATCH records per
#   request (250), closed loop over $HTTP_RECORDS (1 000 000), then `--rate max/2`.
# MQTT: telegate-mqtt-bench, $MQTT_CONNECTIONS devices (1000), QoS 1, $MQTT_WINDOW unacked each
#   (20, libmosquitto's default max_inflight), closed loop over $MQTT_RECORDS (400 000), then
#   `--rate max/2` with the same window.
# Prints one JSON line per run (with the gateway's Kafka commits per second) and a summary line
# per protocol. Uses the broker at TELEGATE_KAFKA_BOOTSTRAP if set, else the one of
# scripts/kafka/kafka.sh (TELEGATE_KAFKA_PORT); TELEGATE_BENCH_BUILD selects the build
# (default build/release, built first when unset).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
which=${1:-both}
seconds=${2:-30}
http_connections=${HTTP_CONNECTIONS:-64}
http_batch=${HTTP_BATCH:-250}
http_records=${HTTP_RECORDS:-1000000}
mqtt_connections=${MQTT_CONNECTIONS:-1000}
mqtt_window=${MQTT_WINDOW:-20}
mqtt_records=${MQTT_RECORDS:-400000}
devices=$((mqtt_connections > http_connections ? mqtt_connections : http_connections))
source bench/gateway_lib.sh
bench_setup
[[ -z ${TELEGATE_BENCH_BUILD:-} ]] && cmake --build --preset release -j1 --target telegate-mqtt-bench >/dev/null
ulimit -n "$(ulimit -Hn)"
mqtt_port=$(free_port tcp)
start_gateway latency "mqtt: {enabled: true, address: 127.0.0.1, port: $mqtt_port}"
echo "# machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); build $build; broker $bootstrap"

sim() {  # extra telegate-sim arguments…; prints its JSON summary
  $build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$http_connections" \
    --connections "$http_connections" --batch "$http_batch" "$@" || true
}
mqtt() {  # extra telegate-mqtt-bench arguments…
  $build/bench/telegate-mqtt-bench publish --port "$mqtt_port" --connections "$mqtt_connections" \
    --devices "$mqtt_connections" --tenant sim --qos 1 --window "$mqtt_window" "$@" || true
}
# Kafka commits per second since $commits/$started were taken (a JSON member).
commit_rate() {
  python3 -c "import sys,time; print('\"commits_per_s\":%.1f' % ((int(sys.argv[1]) - int(sys.argv[2])) / (time.time() - float(sys.argv[3]))))" \
    "$(committed_transactions)" "$commits" "$started"
}
# One protocol: closed-loop run, open-loop run at half its rate; JSON field paths differ.
measure() {  # name rate-field latency-field closed-command open-command
  local name=$1 rate_field=$2 latency_field=$3 closed_command=$4 open_command=$5 closed open half commits started
  commits=$(committed_transactions) started=$(date +%s.%N)
  closed=$($closed_command)
  echo "{\"protocol\":\"$name\",\"run\":\"closed-loop maximum\",\"result\":$closed,$(commit_rate)}"
  half=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['$rate_field'] / 2))" "$closed")
  commits=$(committed_transactions) started=$(date +%s.%N)
  open=$($open_command "$half")
  echo "{\"protocol\":\"$name\",\"run\":\"open loop at 50 %\",\"rate\":$half,\"result\":$open,$(commit_rate)}"
  python3 - "$name" "$closed" "$open" "$rate_field" "$latency_field" <<'PY'
import json, sys
name, closed, opened, rate, lat = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
c, o = closed[lat], opened[lat]
print(json.dumps({"summary": name, "max_records_per_s": closed[rate], "half_records_per_s": opened[rate],
                  "closed_ack_ms": c, "open_half_ack_ms": o,
                  "p99_ratio_open_to_closed": round(o["p99"] / c["p99"], 2) if c["p99"] else None,
                  "p99_target_ms": 250, "p99_margin_ms": round(250 - o["p99"], 1)}))
PY
}

if [[ $which == http || $which == both ]]; then
  sim --records 20000 >/dev/null  # warm-up: topic creation, producers
  http_closed() { sim --records "$http_records"; }
  http_open() { sim --records "$(($1 * seconds))" --rate "$1"; }
  measure http records_per_second ack_latency_ms http_closed http_open
fi
if [[ $which == mqtt || $which == both ]]; then
  mqtt --records 20000 >/dev/null
  mqtt_closed() { mqtt --records "$mqtt_records"; }
  mqtt_open() { mqtt --records "$(($1 * seconds))" --rate "$1"; }
  measure mqtt records_per_s ack_ms mqtt_closed mqtt_open
fi
echo "# gateway warnings: $(grep -c '"level":"warning"' "$work/telegate.log" || true)"
# A count alone does not say whether a warning matters (the start-up one about a destination
# topic that does not exist yet is expected on a fresh broker): the first few, verbatim.
grep '"level":"warning"' "$work/telegate.log" | head -3 | cut -c1-300 | sed 's/^/#   /' || true
