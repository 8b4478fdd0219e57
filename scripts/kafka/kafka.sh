#!/usr/bin/env bash
# Apache Kafka 4.x in KRaft mode on loopback, for tests and benchmarks: one broker (the default)
# or a cluster of combined broker+controller nodes for the fault tests.
#   scripts/kafka/kafka.sh start   fetch jars (cached), format storage, start, wait until it answers
#   scripts/kafka/kafka.sh stop    stop the broker(s) started by `start`
#   scripts/kafka/kafka.sh status  exit 0 when the broker (every node) answers
#   scripts/kafka/kafka.sh restart | bootstrap (prints host:port[,…]) | wipe
#   scripts/kafka/kafka.sh stop-node N | kill-node N | start-node N
#                                  one node of a cluster (1-based): SIGTERM (controlled
#                                  shutdown), SIGKILL (a crash), start and wait until it answers
#   scripts/kafka/kafka.sh throttle BYTES_PER_S | unthrottle
#                                  a default client quota (producer_byte_rate) on every broker
# A partition's leader: `telegate-sim leaders --bootstrap "$(kafka.sh bootstrap)" --topic T`.
# Environment: TELEGATE_KAFKA_PORT (default 19092), TELEGATE_KAFKA_DIR (state, default
# $repo/.cache/kafka), TELEGATE_CACHE (jar cache, default ~/.cache/telegate),
# TELEGATE_KAFKA_NODES (default 1). With N > 1, node i listens on PORT + 2(i-1) (controller on
# the next port) and keeps its state in DIR/node-i; replication factor 3 (or N if smaller),
# min.insync.replicas 2, for the data, offsets and transaction-state topics alike.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${TELEGATE_KAFKA_PORT:-19092}
controller_port=$((port + 1))
state=${TELEGATE_KAFKA_DIR:-$repo/.cache/kafka}
nodes=${TELEGATE_KAFKA_NODES:-1}
[[ $nodes =~ ^[1-9]$ ]] || { echo "kafka.sh: TELEGATE_KAFKA_NODES must be 1-9, got '$nodes'" >&2; exit 2; }
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
jars=${TELEGATE_CACHE:-$HOME/.cache/telegate}/kafka-$kafka_version/jars
pidfile=$state/broker.pid
log=$state/broker.log

die() { echo "kafka.sh: $*" >&2; exit 1; }

require_tools() {
  command -v java >/dev/null || die "Java is missing: install a Java 17+ runtime (scripts/install-deps does)"
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p')
  [[ ${major%%.*} -ge 17 ]] || die "Kafka $kafka_version needs Java 17 or newer, found Java $major"
}

fetch_jars() {
  [[ -f $jars/.complete ]] && return 0
  command -v mvn >/dev/null || die "Maven is missing: install maven (scripts/install-deps does) to fetch the Kafka jars"
  echo "kafka.sh: fetching Kafka $kafka_version jars with Maven into $jars"
  rm -rf "$jars"; mkdir -p "$jars"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" \
    || die "Maven could not fetch org.apache.kafka:kafka_2.13:$kafka_version (see output above)"
  touch "$jars/.complete"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }

running_pid() {
  local file=${1:-$pidfile}
  [[ -f $file ]] || return 1
  local pid; pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# `exec` so that a backgrounded `(java_exec …) &` leaves $! naming the JVM itself, which `stop` signals.
java_run() { (java_exec "$@"); }
java_exec() { exec java -Xms256m -Xmx1g -XX:+UseG1GC -cp "$jars/*" -Dlog4j2.configurationFile="$state/log4j2.properties" "$@"; }

# Cluster mode: node i's ports and state directory.
node_port() { echo $((port + 2 * ($1 - 1))); }
node_dir() { echo "$state/node-$1"; }
cluster_bootstrap() {
  local i list=()
  for i in $(seq 1 "$nodes"); do list+=("127.0.0.1:$(node_port "$i")"); done
  (IFS=,; echo "${list[*]}")
}

write_config() {
  mkdir -p "$state"
  cat >"$state/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
# A development broker: every benchmark run writes fresh bench.<run>.* topics (1-2 GB per
# 4M-record run; one busy hour of benchmarks kept 21 GB and filled the disk), so data is kept
# 20 minutes, in 128 MiB segments, not Kafka's 7 days of 1 GiB. No test reads data that old.
log.retention.ms=1200000
log.segment.bytes=134217728
log.retention.check.interval.ms=60000
CFG
  write_log_config
}

write_log_config() {
  mkdir -p "$state"
  cat >"$state/log4j2.properties" <<CFG
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=File
appender.file.type=File
appender.file.name=File
appender.file.fileName=$state/kafka-java.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
CFG
}

start() {
  require_tools
  if running_pid >/dev/null && answers; then echo "kafka.sh: already running on 127.0.0.1:$port"; return 0; fi
  fetch_jars
  write_config
  if [[ ! -f $state/data/meta.properties ]]; then
    java_run kafka.tools.StorageTool format --standalone -t "$(java_run kafka.tools.StorageTool random-uuid)" \
      -c "$state/server.properties" >"$state/format.log" 2>&1 || { cat "$state/format.log" >&2; die "formatting storage failed"; }
  fi
  (java_exec kafka.Kafka "$state/server.properties") >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if answers; then echo "kafka.sh: Kafka $kafka_version answering on 127.0.0.1:$port"; return 0; fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -30 "$log" >&2; die "broker exited during start-up (log: $log)"; }
    sleep 0.5
  done
  tail -30 "$log" >&2; die "broker did not answer on 127.0.0.1:$port within 60 s (log: $log)"
}

# stop [PIDFILE MESSAGE]: SIGTERM (a controlled shutdown), SIGKILL if still there after 30 s.
stop() {
  local file=${1:-$pidfile} pid
  if pid=$(running_pid "$file"); then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    echo "kafka.sh: ${2:-stopped}"
  fi
  rm -f "$file"
}

# --- cluster mode (TELEGATE_KAFKA_NODES > 1) -------------------------------------------------

write_node_config() {
  local node=$1 dir voters="" i replicas=$((nodes < 3 ? nodes : 3))
  dir=$(node_dir "$node")
  for i in $(seq 1 "$nodes"); do voters+="${voters:+,}$i@127.0.0.1:$(($(node_port "$i") + 1))"; done
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<CFG
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$node"),CONTROLLER://127.0.0.1:$(($(node_port "$node") + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$node")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=$replicas
min.insync.replicas=$((replicas < 2 ? 1 : 2))
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$((replicas < 2 ? 1 : 2))
share.coordinator.state.topic.replication.factor=$replicas
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
unclean.leader.election.enable=false
CFG
}

# Launches node N (formatting its storage on first use) without waiting for it.
launch_node() {
  local node=$1 dir
  dir=$(node_dir "$node")
  running_pid "$dir/broker.pid" >/dev/null && return 0
  write_node_config "$node"
  if [[ ! -f $dir/data/meta.properties ]]; then
    [[ -f $state/cluster.id ]] || java_run kafka.tools.StorageTool random-uuid >"$state/cluster.id"
    java_run kafka.tools.StorageTool format -t "$(cat "$state/cluster.id")" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting node $node failed"; }
  fi
  (java_exec kafka.Kafka "$dir/server.properties") >"$dir/broker.log" 2>&1 &
  echo $! >"$dir/broker.pid"
}

wait_node() {
  local node=$1 dir
  dir=$(node_dir "$node")
  for _ in $(seq 1 180); do
    answers "$(node_port "$node")" && return 0
    kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null || { tail -30 "$dir/broker.log" >&2; die "node $node exited during start-up"; }
    sleep 0.5
  done
  tail -30 "$dir/broker.log" >&2; die "node $node did not answer on 127.0.0.1:$(node_port "$node") within 90 s"
}

stop_node() { stop "$(node_dir "$1")/broker.pid" "node $1 stopped"; }

cluster_node() {
  [[ ${1:-} =~ ^[1-9]$ && $1 -le $nodes ]] || die "node must be 1-$nodes (TELEGATE_KAFKA_NODES=$nodes), got '${1:-}'"
}

cluster_start() {
  require_tools
  fetch_jars
  write_log_config
  local i
  for i in $(seq 1 "$nodes"); do launch_node "$i"; done
  for i in $(seq 1 "$nodes"); do wait_node "$i"; done
  echo "kafka.sh: Kafka $kafka_version cluster of $nodes answering on $(cluster_bootstrap)"
}

cluster_stop() {
  local i
  for i in $(seq 1 "$nodes"); do stop_node "$i" & done
  wait
}

# A default client quota: every producer's bytes/s on each broker, enforced by delaying answers.
throttle() {
  local bootstrap
  bootstrap=$( ((nodes == 1)) && echo "127.0.0.1:$port" || cluster_bootstrap)
  java_run kafka.admin.ConfigCommand --bootstrap-server "$bootstrap" --alter --entity-type clients --entity-default "$@"
}

if ((nodes > 1)); then
  case ${1:-} in
    start) cluster_start ;;
    stop) cluster_stop ;;
    restart) cluster_stop; cluster_start ;;
    status) for i in $(seq 1 "$nodes"); do answers "$(node_port "$i")" || exit 1; done ;;
    bootstrap) cluster_bootstrap ;;
    wipe) cluster_stop; rm -rf "$state" ;;
    stop-node) cluster_node "${2:-}"; stop_node "$2" ;;
    kill-node) cluster_node "${2:-}"; kill -9 "$(cat "$(node_dir "$2")/broker.pid")" 2>/dev/null || true; rm -f "$(node_dir "$2")/broker.pid" ;;
    start-node) cluster_node "${2:-}"; require_tools; launch_node "$2"; wait_node "$2"; echo "kafka.sh: node $2 answering" ;;
    throttle) [[ ${2:-} =~ ^[0-9]+$ ]] || die "throttle BYTES_PER_S"; throttle --add-config "producer_byte_rate=$2" ;;
    unthrottle) throttle --delete-config producer_byte_rate ;;
    *) echo "usage: $0 start|stop|restart|status|bootstrap|wipe|stop-node N|kill-node N|start-node N|throttle B|unthrottle" >&2; exit 2 ;;
  esac
  exit
fi

case ${1:-} in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) answers ;;
  bootstrap) echo "127.0.0.1:$port" ;;
  wipe) stop; rm -rf "$state" ;;
  throttle) [[ ${2:-} =~ ^[0-9]+$ ]] || die "throttle BYTES_PER_S"; throttle --add-config "producer_byte_rate=$2" ;;
  unthrottle) throttle --delete-config producer_byte_rate ;;
  *) echo "usage: $0 start|stop|restart|status|bootstrap|wipe|throttle B|unthrottle" >&2; exit 2 ;;
esac
