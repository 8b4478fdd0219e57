# Sourced by the bench/*.sh scripts: build, broker, and a gateway under test on free ports.
#   bench_setup            builds release (or uses $TELEGATE_BENCH_BUILD); uses the broker at
#                          $TELEGATE_KAFKA_BOOTSTRAP or starts scripts/kafka/kafka.sh's; sets
#                          $build, $bootstrap and $kafka_pid (the broker's JVM)
#   start_gateway NAME [YAML LINES…]
#                          writes a config (Kafka sink, one `tracker` device type, $devices
#                          simulated devices, the extra YAML lines), starts telegate and waits
#                          for /readyz; sets $work, $port, $gateway_pid (killed on exit).
#                          $device_types replaces the device-type list, $extra_tenants (YAML
#                          list items) adds tenants after the simulated devices' one;
#                          $TELEGATE_BENCH_KAFKA ('key: value, …') adds sink.kafka settings
#   http_bench_start [records] [batch] [connections] [devices]
#                          the HTTP → Kafka load's set-up (http_kafka.sh, kernel_per_request.sh):
#                          sets those four, the broker (bench_setup) and a gateway,
#                          and warms it up with
#                          $TELEGATE_BENCH_WARMUP_RECORDS records (default 20 000: topics,
#                          producers, connections); 1 200 000 fills the de-duplication window
#                          (dedup.max_entries, 1M), so the run measures a gateway in steady
#                          state (window evicting, allocator and buffers warm) instead of one
#                          still paying first touches
#   http_sim RECORDS [ARGS…]
#                          telegate-sim's closed loop of that load against the gateway (ARGS
#                          are added, e.g. --rate R for an open loop); prints its summary
#                          (exits 1 when not every record was accepted)
#   timed_http_sim RECORDS [ARGS…]
#                          http_sim, setting $sim (its summary) and $sim_cpu (its user +
#                          system CPU seconds)
#   free_port tcp|udp, cpu_seconds PID, cpu_since SECONDS PID, context_switches PID,
#   minor_faults PID, committed_transactions
# TELEGATE_BENCH_GATEWAY_PRELOAD=LIB is put in LD_PRELOAD for the gateway process only (not the
# load generator, baseline or broker), to A/B an allocator without rebuilding.
# TELEGATE_BENCH_PARTITIONS=N (default 16) creates the gateway's topics (and http_kafka.sh's
# baseline topic) with N partitions; 0 leaves them to the broker's auto-creation (num.partitions,
# 4 in scripts/kafka/kafka.sh). How many partitions share a transaction decides how many produce
# requests each partition needs per commit, which librdkafka 2.0.2 sends one at a time, spinning
# in between: 16 is what docs/deploy.md's sizing rule asks for at these rates
# (docs/kafka-sink.md, "Partitions").

bench_setup() {
  build=${TELEGATE_BENCH_BUILD:-build/release}
  if [[ -z ${TELEGATE_BENCH_BUILD:-} ]]; then
    cmake --preset release >/dev/null
    cmake --build --preset release -j"$(nproc)" --target telegate telegate-sim telegate-bench >/dev/null
  fi
  # A broker named by TELEGATE_KAFKA_BOOTSTRAP (as the tests and mqtt_connections.sh take it) is
  # used as it is; otherwise scripts/kafka/kafka.sh's (TELEGATE_KAFKA_PORT) is started if need be.
  # The benchmarks read the broker's CPU, so it must be a process on this machine ($kafka_pid).
  if [[ -n ${TELEGATE_KAFKA_BOOTSTRAP:-} ]]; then
    bootstrap=$TELEGATE_KAFKA_BOOTSTRAP
    kafka_pid=$(ss -Hltnp "sport = :${bootstrap##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
    if [[ -z $kafka_pid ]]; then
      echo "bench: no local process listens on $bootstrap (TELEGATE_KAFKA_BOOTSTRAP); the benchmarks measure the broker's CPU and need it on this machine" >&2
      exit 1
    fi
  else
    scripts/kafka/kafka.sh start >/dev/null
    bootstrap=$(scripts/kafka/kafka.sh bootstrap)
    kafka_pid=$(cat "${TELEGATE_KAFKA_DIR:-.cache/kafka}/broker.pid")
  fi
  bench_partitions=${TELEGATE_BENCH_PARTITIONS:-16}
}

free_port() {
  local kind=SOCK_STREAM
  [[ $1 == udp ]] && kind=SOCK_DGRAM
  python3 -c "import socket; s=socket.socket(type=socket.$kind); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# CPU seconds PID used since cpu_seconds said SECONDS.
cpu_since() { awk -v a="$(cpu_seconds "$2")" -v b="$1" 'BEGIN {print a - b}'; }

# Context switches (voluntary + involuntary) of PID's live threads so far: wake-ups cost these.
context_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }

# Minor page faults of PID so far (exited threads included): memory touched for the first time,
# or again after the allocator or a thread's exit gave it back.
minor_faults() { awk '{print $10}' "/proc/$1/stat"; }

# Kafka transactions the gateway on $port has committed so far.
committed_transactions() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^telegate_kafka_transactions_total\{.*result="committed"/ {printf "%d\n", $2}'
}

start_gateway() {
  local name=$1
  shift
  work=$(mktemp -d)
  trap 'kill $gateway_pid 2>/dev/null || true; rm -rf "$work"' EXIT
  port=$(free_port tcp)
  run_id=$(date +%s)
  if ((bench_partitions > 0)); then
    for type in location sensor; do
      $build/bench/telegate-bench kafka-topic --bootstrap "$bootstrap" --topic "bench.$run_id.$type" \
        --partitions "$bench_partitions"
    done
  fi
  {
    echo "instance_id: $name-$run_id"
    echo "log_level: warn"
    echo "http: {address: 127.0.0.1, port: $port}"
    for line in "$@"; do echo "$line"; done
    echo "sink:"
    echo "  type: kafka"
    echo "  topic_template: \"bench.$run_id.{type}\""
    local librdkafka=""
    [[ -n ${TELEGATE_BENCH_LIBRDKAFKA:-} ]] && librdkafka=", librdkafka: {$TELEGATE_BENCH_LIBRDKAFKA}"
    local kafka=""  # e.g. TELEGATE_BENCH_KAFKA='transaction_min_interval_ms: 100' (A/B of sink settings)
    [[ -n ${TELEGATE_BENCH_KAFKA:-} ]] && kafka=", $TELEGATE_BENCH_KAFKA"
    echo "  kafka: {bootstrap_servers: \"$bootstrap\"$kafka$librdkafka}"
    local default_types='[{name: tracker, codec: json}]'
    echo "device_types: ${device_types:-$default_types}"
    $build/firmware-sim/telegate-sim provision --devices "$devices"
    printf '%s' "${extra_tenants:-}"
  } >"$work/telegate.yaml"
  LD_PRELOAD=${TELEGATE_BENCH_GATEWAY_PRELOAD:-} \
    $build/gateway/telegate --config "$work/telegate.yaml" 2>"$work/telegate.log" &
  gateway_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the gateway did not become ready:" >&2
  tail -20 "$work/telegate.log" >&2
  return 1
}

http_bench_start() {
  records=${1:-1000000}
  batch=${2:-250}
  connections=${3:-64}
  devices=${4:-64}
  bench_setup
  start_gateway bench
  # Warm-up: topic creation, producer and connection set-up are not what we measure.
  http_sim "${TELEGATE_BENCH_WARMUP_RECORDS:-20000}" >/dev/null || true
}

http_sim() {
  $build/firmware-sim/telegate-sim http --url "http://127.0.0.1:$port/v1/telemetry" --devices "$devices" \
    --connections "$connections" --batch "$batch" --records "$1" "${@:2}"
}

# Bash's `time` gives the simulator's user + system CPU seconds; its stderr still goes to ours.
timed_http_sim() {
  sim=$( { TIMEFORMAT='%3U %3S'; time http_sim "$@" 2>"$work/sim.err" || true; } 2>"$work/sim.time")
  cat "$work/sim.err" >&2
  sim_cpu=$(awk '{print $1 + $2}' "$work/sim.time")
}
