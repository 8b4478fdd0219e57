#!/usr/bin/env bash
# MQTT on this machine: gateway RSS for many idle connections, and QoS 0/1 publish throughput
# into Kafka — next to Mosquitto (the broker alone, no Kafka) driven by the same load generator
# in the same run. Uses the running test broker (TELEGATE_KAFKA_BOOTSTRAP, 127.0.0.1:19092).
#   bench/mqtt_connections.sh ["10000 50000"] [publish records] [publishing devices] ["32 256" QoS 1 windows]
# An idle count of 0 skips the idle measurement.
# Build first (2-core machine: -j1):
#   cmake --build build/dev -j1 --target telegate telegate-sim telegate-mqtt-bench
# TELEGATE_BENCH_BUILD selects the build directory (default build/dev, RelWithDebInfo -O2);
# TELEGATE_BENCH_KAFKA ('key: value, …') adds sink.kafka settings to the gateway's config.
# TELEGATE_BENCH_GATEWAY_PRELOAD=LIB is put in LD_PRELOAD for the gateway only (allocator A/B).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gateway_lib.sh  # free_port, cpu_seconds, committed_transactions (of the gateway on $port)
idle_counts=${1:-"10000 50000"}
records=${2:-200000}
publishers=${3:-100}
windows=${4:-"32 256"}
build=${TELEGATE_BENCH_BUILD:-build/dev}
bootstrap=${TELEGATE_KAFKA_BOOTSTRAP:-127.0.0.1:19092}
max_idle=$(tr ' ' '\n' <<<"$idle_counts" | sort -n | tail -1)
devices=$((max_idle > publishers ? max_idle : publishers))

# Every connection is a descriptor on both ends; source addresses 127.0.0.2… spread the
# client side over many ephemeral port ranges.
# Each side holds one descriptor per connection (the two are separate processes). Without
# CAP_SYS_RESOURCE the hard limit caps what one process can hold; counts above it are skipped.
wanted=$((devices + 1000))
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $wanted ]]; then
  echo "# open-file hard limit $hard: idle counts above $((hard - 1000)) are skipped (raise it as root: ulimit -Hn)"
  ulimit -n "$hard"
else
  ulimit -n "$wanted"
fi
fd_limit=$(ulimit -n)

work=$(mktemp -d)
gateway_pid=""
mosquitto_pid=""
holder_pid=""
cleanup() {
  for pid in $holder_pid $gateway_pid $mosquitto_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

port=$(free_port tcp)  # the gateway's HTTP port (metrics, readiness)
mqtt_port=$(free_port tcp)
run_id=$(date +%s)
{
  echo "instance_id: bench-mqtt-$run_id"
  echo "log_level: warn"
  echo "http: {address: 127.0.0.1, port: $port}"
  echo "mqtt: {enabled: true, address: 127.0.0.1, port: $mqtt_port, receive_maximum: 1000}"
  echo "sink:"
  echo "  type: kafka"
  echo "  topic_template: \"bench.$run_id.{type}\""
  echo "  kafka: {bootstrap_servers: \"$bootstrap\"${TELEGATE_BENCH_KAFKA:+, $TELEGATE_BENCH_KAFKA}}"
  echo "device_types: [{name: tracker, codec: json}]"
  $build/firmware-sim/telegate-sim provision --devices "$devices" --tenant bench
} >"$work/telegate.yaml"

LD_PRELOAD=${TELEGATE_BENCH_GATEWAY_PRELOAD:-} \
  $build/gateway/telegate --config "$work/telegate.yaml" 2>"$work/telegate.log" &
gateway_pid=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
accepted() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^telegate_records_accepted_total\{protocol="mqtt"\}/ {printf "%d\n", $2}'
}

mosquitto_port=$(free_port tcp)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_dest none\n' \
  "$mosquitto_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
mosquitto_pid=$!
sleep 1

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -r); build $build"

# ---- idle connections: RSS of the server process before and after N CONNECTed clients
idle() {  # server-name pid port count
  local name=$1 pid=$2 port=$3 count=$4
  local before after fifo result
  before=$(rss_kib "$pid")
  fifo=$work/hold-$name-$count
  mkfifo "$fifo"
  $build/bench/telegate-mqtt-bench idle --port "$port" --connections "$count" --devices "$devices" \
    --sources 200 <"$fifo" >"$work/idle.out" &
  holder_pid=$!
  exec 7>"$fifo"  # keeps the connections open until closed below
  for _ in $(seq 1 600); do [[ -s $work/idle.out ]] && break; sleep 0.5; done
  result=$(cat "$work/idle.out")
  sleep 3
  after=$(rss_kib "$pid")
  echo "{\"server\":\"$name\",\"idle_connections\":$count,\"client\":$result,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"bytes_per_connection\":$(((after - before) * 1024 / count))}"
  exec 7>&-
  wait "$holder_pid" || true
  holder_pid=""
  rm -f "$fifo" "$work/idle.out"
  sleep 5  # the servers notice the closes
}
for count in $idle_counts; do
  [[ $count -eq 0 ]] && continue
  if [[ $((count + 1000)) -gt $fd_limit ]]; then
    echo "{\"idle_connections\":$count,\"skipped\":\"open-file limit $fd_limit\"}"
    continue
  fi
  idle telegate "$gateway_pid" "$mqtt_port" "$count"
  idle mosquitto "$mosquitto_pid" "$mosquitto_port" "$count"
done

# ---- publish throughput: the same publishers against telegate (→ Kafka) and Mosquitto
publish() {  # server-name port qos window
  $build/bench/telegate-mqtt-bench publish --port "$2" --connections "$publishers" --devices "$publishers" \
    --qos "$3" --window "$4" --records "$records"
}
# Warm-up: Kafka topic creation and producer set-up are not what we measure.
publish telegate "$mqtt_port" 1 32 >/dev/null 2>&1 || true
for window in $windows; do
  cpu_before=$(cpu_seconds $gateway_pid)
  commits_before=$(committed_transactions)
  t=$(publish telegate "$mqtt_port" 1 "$window")
  cpu_after=$(cpu_seconds $gateway_pid)
  commits=$(($(committed_transactions) - commits_before))
  # Acks wait for the commit: with few records in flight the commit round trip sets the rate.
  echo "{\"server\":\"telegate\",\"result\":$t,\"gateway_cpu_us_per_record\":$(python3 -c "print(round(($cpu_after-$cpu_before)*1e6/$records,2))"),\"commits\":$commits,\"records_per_commit\":$((records / (commits > 0 ? commits : 1)))}"
  m=$(publish mosquitto "$mosquitto_port" 1 "$window")
  echo "{\"server\":\"mosquitto\",\"result\":$m}"
done
# QoS 0: the sender's rate, and for telegate the rate at which records became durable in Kafka.
base=$(accepted)
start=$(date +%s.%N)
t=$(publish telegate "$mqtt_port" 0 0)
target=$((base + records))
last=$base
stalled=0
while true; do
  now_accepted=$(accepted)
  [[ $now_accepted -ge $target ]] && break
  if [[ $now_accepted -eq $last ]]; then stalled=$((stalled + 1)); else stalled=0; fi
  [[ $stalled -ge 20 ]] && break
  last=$now_accepted
  sleep 0.5
done
end=$(date +%s.%N)
durable=$(( $(accepted) - base ))
echo "{\"server\":\"telegate\",\"result\":$t,\"durable_records\":$durable,\"durable_records_per_s\":$(python3 -c "print(round($durable/($end-$start)))")}"
m=$(publish mosquitto "$mosquitto_port" 0 0)
echo "{\"server\":\"mosquitto\",\"result\":$m}"
echo "# gateway warnings: $(grep -c '"level":"warning"' "$work/telegate.log" || true)"
