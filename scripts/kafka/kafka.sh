#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker in KRaft mode on loopback, for tests and benchmarks.
#   scripts/kafka/kafka.sh start   fetch jars (cached), format storage, start, wait until it answers
#   scripts/kafka/kafka.sh stop    stop the broker started by `start`
#   scripts/kafka/kafka.sh status  exit 0 when the broker answers
#   scripts/kafka/kafka.sh restart | bootstrap (prints host:port)
# Environment: TELEGATE_KAFKA_PORT (default 19092), TELEGATE_KAFKA_DIR (state, default
# $repo/.cache/kafka), TELEGATE_CACHE (jar cache, default ~/.cache/telegate).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${TELEGATE_KAFKA_PORT:-19092}
controller_port=$((port + 1))
state=${TELEGATE_KAFKA_DIR:-$repo/.cache/kafka}
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

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# `exec` so that a backgrounded `(java_exec …) &` leaves $! naming the JVM itself, which `stop` signals.
java_run() { (java_exec "$@"); }
java_exec() { exec java -Xms256m -Xmx1g -XX:+UseG1GC -cp "$jars/*" -Dlog4j2.configurationFile="$state/log4j2.properties" "$@"; }

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
CFG
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

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    echo "kafka.sh: stopped"
  fi
  rm -f "$pidfile"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) answers ;;
  bootstrap) echo "127.0.0.1:$port" ;;
  wipe) stop; rm -rf "$state" ;;
  *) echo "usage: $0 start|stop|restart|status|bootstrap|wipe" >&2; exit 2 ;;
esac
