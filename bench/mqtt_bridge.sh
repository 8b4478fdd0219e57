#!/usr/bin/env bash
# MQTT bridge throughput: Mosquitto → telegate (Paho, ack after commit) → Kafka, next to what
# Mosquitto itself delivers to a plain subscriber (mosquitto_sub) from the same publisher in
# the same run, so the two figures are comparable on a shared, noisy machine.
#   bench/mqtt_bridge.sh [messages] [clients] [transaction_interval_ms]
# One location record per message, QoS 1, published by one mosquitto_pub -l connection.
# Prints one JSON line per phase and a summary line for docs/benchmarks.md.
# TELEGATE_BENCH_BUILD=build/dev measures an existing dev build instead of building release.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
messages=${1:-2000}
clients=${2:-1}
interval_ms=${3:-5}
build=${TELEGATE_BENCH_BUILD:-build/release}

if [[ -z ${TELEGATE_BENCH_BUILD:-} ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j1 --target telegate >/dev/null
fi
# A broker that is already up (TELEGATE_KAFKA_BOOTSTRAP) is used as it is, never restarted.
bootstrap=${TELEGATE_KAFKA_BOOTSTRAP:-}
if [[ -z $bootstrap ]]; then
  scripts/kafka/kafka.sh start >/dev/null
  bootstrap=$(scripts/kafka/kafka.sh bootstrap)
fi

work=$(mktemp -d)
gateway_pid=""
broker_pid=""
cleanup() {
  [[ -n $gateway_pid ]] && kill "$gateway_pid" 2>/dev/null || true
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mqtt_port=$(free_port)
run_id=$(date +%s)
now() { date +%s.%N; }

# The broker: no queue limit, so neither phase loses messages to Mosquitto's default of 1000.
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nlog_dest none\n' "$mqtt_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" &
broker_pid=$!
sleep 0.5

ts=$(( $(date +%s) * 1000 - 600000 ))
python3 - "$messages" "$ts" "$run_id" >"$work/lines.txt" <<'PY'
import sys
n, ts, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(n):
    print('{"device_id":"truck-1","type":"location","ts":%d,"msg_id":"b%s-%d","lat":46.05,"lon":14.51}' % (ts + i, run, i))
PY
publish() { mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -V mqttv5 -q 1 -t "$1" -l <"$work/lines.txt"; }

# Phase 1, the broker alone: a QoS 1 subscriber that exits after the last message.
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -V mqttv5 -q 1 -t "plain/#" -C "$messages" >/dev/null &
sub_pid=$!
sleep 0.3
t0=$(now)
publish plain/acme/truck-1/telemetry
wait $sub_pid
t1=$(now)
broker=$(python3 -c "import json,sys; n=int(sys.argv[1]); s=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps({'phase':'mosquitto_sub','messages':n,'seconds':round(s,3),'messages_per_second':round(n/s)}))" "$messages" "$t0" "$t1")
echo "$broker"

# Phase 2, through telegate.
token_sha=$(printf '%s' truck-1-token | sha256sum | cut -d' ' -f1)
cat >"$work/telegate.yaml" <<YAML
instance_id: bench-bridge-$run_id
log_level: warn
http: {address: 127.0.0.1, port: $port}
mqtt_bridge:
  enabled: true
  broker: tcp://127.0.0.1:$mqtt_port
  clients: $clients
  subscriptions: [{filter: "fleet/+/+/telemetry", qos: 1, shared_group: bench}]
  mappings: [{topic: "fleet/{tenant}/{device_id}/telemetry"}]
sink:
  type: kafka
  topic_template: "bench.$run_id.{type}"
  kafka: {bootstrap_servers: "$bootstrap", transaction_max_interval_ms: $interval_ms}
device_types: [{name: tracker, codec: json}]
tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: $token_sha}]}]
YAML
$build/gateway/telegate --config "$work/telegate.yaml" 2>"$work/telegate.log" &
gateway_pid=$!
committed() {
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^telegate_mqtt_bridge_messages_total\{outcome="committed"\}/ {print int($2)}'
}
for _ in $(seq 1 100); do
  [[ $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^telegate_mqtt_bridge_connected_clients/ {print int($2)}') == "$clients" ]] && break
  sleep 0.2
done
sleep 0.5
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
cpu0=$(cpu_seconds $gateway_pid)
t0=$(now)
publish fleet/acme/truck-1/telemetry
while [[ $(committed) -lt $messages ]]; do sleep 0.05; done
t1=$(now)
cpu1=$(cpu_seconds $gateway_pid)
bridge=$(python3 -c "import json,sys; n=int(sys.argv[1]); s=float(sys.argv[3])-float(sys.argv[2]); c=float(sys.argv[5])-float(sys.argv[4]); print(json.dumps({'phase':'telegate_bridge','messages':n,'seconds':round(s,3),'messages_per_second':round(n/s),'gateway_cpu_us_per_message':round(c*1e6/n,1)}))" "$messages" "$t0" "$t1" "$cpu0" "$cpu1")
echo "$bridge"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^telegate_mqtt_bridge_(retries|redelivered)' || true

python3 - "$broker" "$bridge" "$clients" "$interval_ms" <<'PY'
import json, sys
broker, bridge = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"benchmark": "mqtt-bridge-vs-mosquitto", "messages": broker["messages"], "clients": int(sys.argv[3]),
  "transaction_max_interval_ms": int(sys.argv[4]),
  "mosquitto_sub_messages_per_second": broker["messages_per_second"],
  "bridge_messages_per_second": bridge["messages_per_second"],
  "bridge_gateway_cpu_us_per_message": bridge["gateway_cpu_us_per_message"]}))
PY
