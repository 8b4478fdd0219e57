# Sourced by tests/fault/fault.sh: the steps a fault scenario is made of.
#
#   fault_begin NAME              a run id, a work dir, cleanup on exit; sets $run, $work, $topic
#   use_single_broker | use_cluster
#                                 which Kafka the gateways write to (started if not running)
#   start_gateway LABEL           writes the YAML (base + $gateway_yaml / $sink_yaml / $kafka_yaml
#                                 lines), starts telegate and waits for /readyz. Every LABEL has
#                                 its own HTTP port, kept across restarts; every start of a
#                                 scenario shares one instance_id (so transactional ids too)
#   stop_gateway LABEL [SIGNAL]   notes its peak RSS, signals it (TERM), waits for it
#   start_load LABEL [SIM ARGS…]  telegate-sim http against LABEL in the background, every
#                                 acknowledged msg_id to $work/acks-<n>; a batch is retried
#                                 $max_retries times (default 1000: until the fault is over);
#                                 msg_ids start with $run_id (default "$run-<n>")
#   wait_load                     waits for every load; fails if a sim could not run
#   audit_and_record              telegate-sim audit of $topic against all ack logs, one row
#                                 appended to the results file; fails on lost or duplicated > 0
#   sim_total KEY                 KEY of the sims' summaries, added up (e.g. acknowledged, outcomes.503)
#
# Environment: TELEGATE_GATEWAY_BIN, TELEGATE_SIM_BIN (set by ctest), TELEGATE_FAULT_RESULTS
# (results file), TELEGATE_KAFKA_PORT / TELEGATE_KAFKA_DIR (the single broker, as for the
# integration tests), TELEGATE_FAULT_CLUSTER_PORT (default 19400) / TELEGATE_FAULT_CLUSTER_DIR
# (the 3-node cluster), TELEGATE_FAULT_LONG=1 (longer loads).

set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gateway_bin=${TELEGATE_GATEWAY_BIN:-$repo/build/dev/gateway/telegate}
sim_bin=${TELEGATE_SIM_BIN:-$repo/build/dev/firmware-sim/telegate-sim}
results=${TELEGATE_FAULT_RESULTS:-$repo/build/dev/fault/results.md}
long=${TELEGATE_FAULT_LONG:-0}
devices=16

gateway_yaml=()  # extra top-level YAML lines
sink_yaml=()     # extra lines inside `sink:`
kafka_yaml=()    # extra lines inside `sink.kafka:`
declare -A gateway_pid=() gateway_port=()
declare -A load_pids=()  # load number → telegate-sim pid, while running
loads=0
max_rss_kb=0

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

kafka_single() { env -u TELEGATE_KAFKA_NODES "$repo/scripts/kafka/kafka.sh" "$@"; }
kafka_cluster() {
  TELEGATE_KAFKA_NODES=3 TELEGATE_KAFKA_PORT=${TELEGATE_FAULT_CLUSTER_PORT:-19400} \
    TELEGATE_KAFKA_DIR=${TELEGATE_FAULT_CLUSTER_DIR:-$(dirname "$results")/kafka-cluster} \
    "$repo/scripts/kafka/kafka.sh" "$@"
}

use_single_broker() {
  kafka_single start >/dev/null 2>&1 || die "the single broker did not start (scripts/kafka/kafka.sh start)"
  bootstrap=$(kafka_single bootstrap)
}

use_cluster() {
  log "starting the 3-node cluster"
  kafka_cluster start >&2 2>&1 || die "the 3-node cluster did not start"
  bootstrap=$(kafka_cluster bootstrap)
  cleanup_steps+=("kafka_cluster stop >/dev/null 2>&1")
}

cleanup_steps=()
cleanup() {
  local label pid step
  for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done  # only our own sims
  for label in "${!gateway_pid[@]}"; do
    pid=${gateway_pid[$label]}
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  done
  for step in "${cleanup_steps[@]}"; do eval "$step" || true; done
  if [[ ${keep_work:-0} == 0 ]]; then rm -rf "$work"; else log "work dir kept: $work"; fi
}

fault_begin() {
  scenario=$1
  run=$(date +%s)$RANDOM
  work=$(mktemp -d "${TMPDIR:-/tmp}/telegate-fault-$scenario.XXXXXX")
  topic="fault.$run.location"
  keep_work=1  # until the scenario passes: the logs explain a failure
  trap cleanup EXIT
  [[ -x $gateway_bin && -x $sim_bin ]] || die "build telegate and telegate-sim first ($gateway_bin, $sim_bin)"
  log "scenario $scenario: topic $topic, work dir $work"
}

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

write_config() {
  local label=$1 line
  {
    echo "instance_id: fault-$scenario-$run"
    echo "log_level: warn"
    echo "http: {address: 127.0.0.1, port: ${gateway_port[$label]}}"
    for line in "${gateway_yaml[@]}"; do echo "$line"; done
    echo "sink:"
    echo "  type: kafka"
    echo "  topic_template: \"fault.$run.{type}\""
    for line in "${sink_yaml[@]}"; do echo "  $line"; done
    echo "  kafka:"
    echo "    bootstrap_servers: \"$bootstrap\""
    for line in "${kafka_yaml[@]}"; do echo "    $line"; done
    echo "device_types: [{name: tracker, codec: json}]"
    "$sim_bin" provision --devices "$devices"
  } >"$work/$label.yaml"
}

start_gateway() {
  local label=$1
  [[ -n ${gateway_port[$label]:-} ]] || gateway_port[$label]=$(free_port)
  write_config "$label"
  "$gateway_bin" --config "$work/$label.yaml" >>"$work/$label.log" 2>&1 &
  gateway_pid[$label]=$!
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:${gateway_port[$label]}/readyz" >/dev/null && { log "gateway $label ready (pid ${gateway_pid[$label]})"; return 0; }
    kill -0 "${gateway_pid[$label]}" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$work/$label.log" >&2
  die "gateway $label did not become ready"
}

# Peak RSS so far (VmHWM) of a running gateway, folded into $max_rss_kb.
note_rss() {
  local kb
  kb=$(awk '/^VmHWM:/ {print $2}' "/proc/${gateway_pid[$1]}/status" 2>/dev/null || true)
  [[ -n $kb ]] && ((kb > max_rss_kb)) && max_rss_kb=$kb
  return 0
}

stop_gateway() {
  local label=$1 signal=${2:-TERM} pid=${gateway_pid[$1]}
  note_rss "$label"
  log "gateway $label: SIG$signal"
  kill "-$signal" "$pid"
  wait "$pid" 2>/dev/null || true
  gateway_pid[$label]=""
}

start_load() {
  local label=$1 n=$loads
  shift
  loads=$((loads + 1))
  "$sim_bin" http --url "http://127.0.0.1:${gateway_port[$label]}/v1/telemetry" --devices "$devices" \
    --run-id "${run_id:-$run-$n}" --ack-log "$work/acks-$n" --max-retries "${max_retries:-1000}" --timeout-ms 15000 "$@" \
    >"$work/sim-$n.json" 2>"$work/sim-$n.err" &
  load_pids[$n]=$!
}

wait_load() {
  local n
  for n in $(printf '%s\n' "${!load_pids[@]}" | sort -n); do
    wait "${load_pids[$n]}" || true  # exit 1 = not everything acknowledged: the scenario judges that
    unset "load_pids[$n]"
    [[ -s $work/sim-$n.json ]] || { cat "$work/sim-$n.err" >&2; die "telegate-sim $n printed no summary"; }
    log "sim $n: $(cat "$work/sim-$n.json")"
  done
}

# KEY (dotted, e.g. outcomes.503) of every sim summary, added up (0 when absent).
sim_total() {
  python3 - "$1" "$work"/sim-*.json <<'PY'
import json, sys
total = 0
for path in sys.argv[2:]:
    value = json.load(open(path))
    for part in sys.argv[1].split("."):
        value = value.get(part, 0) if isinstance(value, dict) else 0
    total += value
print(total)
PY
}

# The value of an unlabelled metric of a running gateway (0 when absent).
gateway_metric() {
  curl -sf "http://127.0.0.1:${gateway_port[$1]}/metrics" | awk -v name="$2" '$1 == name {print $2; found=1} END {if (!found) print 0}'
}

# Waits (up to $2 s) until a gateway's metric $3 equals $4.
wait_for_metric() {
  local label=$1 patience=$2 name=$3 want=$4 value
  for _ in $(seq 1 $((patience * 5))); do
    value=$(gateway_metric "$label" "$name")
    [[ $value == "$want" ]] && return 0
    sleep 0.2
  done
  die "gateway $label: $name stayed at $value, not $want, for $patience s"
}

json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

audit_and_record() {
  local label status=0 acked found lost duplicated sent
  for label in "${!gateway_pid[@]}"; do [[ -n ${gateway_pid[$label]} ]] && note_rss "$label"; done
  cat "$work"/acks-* >"$work/acks"
  "$sim_bin" audit --bootstrap "$bootstrap" --topic "$topic" --ack-log "$work/acks" --prefix "$run-" \
    >"$work/audit.json" 2>"$work/audit.err" || status=$?
  [[ -s $work/audit.json ]] || { cat "$work/audit.err" >&2; die "the audit did not run"; }
  head -20 "$work/audit.err" >&2
  log "audit: $(cat "$work/audit.json")"
  sent=$(sim_total records)
  acked=$(json_field "$work/audit.json" acknowledged)
  found=$(json_field "$work/audit.json" found)
  lost=$(json_field "$work/audit.json" lost)
  duplicated=$(json_field "$work/audit.json" duplicated)
  mkdir -p "$(dirname "$results")"
  [[ -s $results ]] || {
    echo "| date (UTC) | scenario | records sent | acknowledged | found in Kafka | lost | duplicated | max RSS (MB) |"
    echo "|---|---|---|---|---|---|---|---|"
  } >"$results"
  local variant=""
  [[ $long == 1 ]] && variant=" (long)"
  printf '| %s | %s%s | %s | %s | %s | %s | %s | %d |\n' "$(date -u '+%F %H:%M')" "$scenario" "$variant" \
    "$sent" "$acked" "$found" "$lost" "$duplicated" $(((max_rss_kb + 512) / 1024)) >>"$results"
  ((status == 0 && lost == 0 && duplicated == 0)) || die "$lost acknowledged records lost, $duplicated duplicated"
}

# Every record sent was acknowledged: the sims retried through the fault until the gateway could
# take them (push-back), rather than giving up.
expect_all_acknowledged() {
  local sent acked
  sent=$(sim_total records)
  acked=$(sim_total acknowledged)
  ((acked == sent)) || die "only $acked of $sent records acknowledged"
}

fault_pass() {
  keep_work=0
  log "PASS $scenario"
}
