#!/usr/bin/env bash
# Fault scenarios against the real gateway, the real Kafka and telegate-sim devices that record
# every acknowledgement; each ends with a read_committed audit: acknowledged-and-missing = 0,
# duplicates = 0 (tests/fault/README.md).
#   tests/fault/fault.sh SCENARIO     one of the scenario_* functions below, without the prefix
# A scenario is a few lines of the steps in lib.sh. To add one, e.g. the spool mode: copy
# scenario_broker_outage_pushback, add the gateway's lines (gateway_yaml+=(…), sink_yaml+=(…),
# kafka_yaml+=(…)) and register it in tests/fault/CMakeLists.txt.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# SIGKILL mid-load, then a restart with the same instance_id: its transactional ids fence the
# dead incarnation's open transactions, and the de-duplication journal answers the retries of
# batches that had committed before the kill.
scenario_gateway_sigkill() {
  use_single_broker
  start_gateway a
  local kills=1 records=20000
  [[ $long == 1 ]] && kills=3 records=60000
  start_load a --connections 4 --batch 50 --records "$records" --rate 2000
  for _ in $(seq 1 "$kills"); do
    sleep 4
    stop_gateway a KILL
    start_gateway a
  done
  wait_load
  stop_gateway a
  expect_all_acknowledged
  audit_and_record
}

# Gateway a under a load of 20,000 records at 1,000/s; after 5 s the broker is stopped for 30 s
# (90 s with TELEGATE_FAULT_LONG=1). Returns with the broker still down.
outage_under_load() {
  kafka_yaml+=("delivery_timeout_ms: 5000")
  cleanup_steps+=("kafka_single start >/dev/null 2>&1")  # never leave the shared broker down
  local outage=30
  [[ $long == 1 ]] && outage=90
  start_gateway a
  start_load a --connections 4 --batch 50 --records 20000 --rate 1000
  sleep 5
  log "stopping the broker for $outage s"
  kafka_single stop >&2
  sleep "$outage"
}

# The broker is stopped for 30 s (90 s with TELEGATE_FAULT_LONG=1) under load. Push-back: the
# gateway answers 503 while it cannot commit, the devices retry the same msg_ids until acked.
scenario_broker_outage_pushback() {
  use_single_broker
  outage_under_load
  kafka_single start >&2
  wait_load
  # A commit sent as the broker went is in doubt and answered only once the broker is back.
  log "commits in doubt: $(gateway_metric a 'telegate_kafka_transactions_total{result="in_doubt"}')"
  stop_gateway a
  (($(sim_total outcomes.503) > 0)) || die "no 503 while the broker was down: push-back never engaged"
  expect_all_acknowledged
  audit_and_record
}

# The same outage with a spool: devices keep being acknowledged from the local spool while the
# broker is down. When it returns the spool is replayed, and the gateway is SIGKILLed in the
# middle of the replay and restarted: it resumes from the replay position committed in the same
# transaction as the replayed records, so nothing is replayed twice or skipped.
scenario_broker_outage_spool() {
  use_single_broker
  # Small replay transactions, so that the replay lasts long enough to be killed in.
  kafka_yaml+=("spool: {directory: \"$work/spool\", fsync: always, replay_batch_bytes: 65536}")
  outage_under_load
  local spooled
  spooled=$(gateway_metric a telegate_spool_pending_records)
  ((${spooled%.*} > 0)) || die "nothing was spooled while the broker was down"
  log "$spooled records pending in the spool; starting the broker"
  kafka_single start >&2
  wait_for_metric a 60 telegate_spool_mode 2
  local pending=$spooled
  for _ in $(seq 1 300); do  # killed once part of the replay has committed, not before
    pending=$(gateway_metric a telegate_spool_pending_records)
    ((${pending%.*} < ${spooled%.*})) && break
    sleep 0.1
  done
  ((${pending%.*} > 0 && ${pending%.*} < ${spooled%.*})) || die "the replay did not run long enough to kill it midway ($pending pending)"
  log "replaying ($pending of $spooled pending): SIGKILL"
  stop_gateway a KILL
  start_gateway a
  wait_load
  wait_for_metric a 120 telegate_spool_pending_records 0
  wait_for_metric a 30 telegate_spool_mode 0
  stop_gateway a
  expect_all_acknowledged
  audit_and_record
}

# Three combined broker+controller nodes, replication factor 3, min.insync.replicas 2: the
# leader of partition 0 of the data topic is SIGKILLed under load, and started again later.
scenario_cluster_leader_kill() {
  use_cluster
  # The gateway's own topics need the same redundancy, or the dead node takes them down.
  gateway_yaml+=("dedup: {journal_replication_factor: 3}" "catalog: {kafka_replication_factor: 3}")
  start_gateway a
  local records=20000
  [[ $long == 1 ]] && records=60000
  start_load a --connections 4 --batch 50 --records "$records" --rate 2000
  sleep 4
  local leader
  leader=$("$sim_bin" leaders --bootstrap "$bootstrap" --topic "$topic" | awk '$1 == 0 {print $2}')
  [[ $leader =~ ^[1-3]$ ]] || die "no leader for $topic partition 0 (got '$leader')"
  log "SIGKILL node $leader, the leader of $topic/0"
  kafka_cluster kill-node "$leader"
  local started=$SECONDS new_leader=$leader
  while [[ $new_leader == "$leader" ]] && ((SECONDS - started < 30)); do
    sleep 1
    new_leader=$("$sim_bin" leaders --bootstrap "$bootstrap" --topic "$topic" | awk '$1 == 0 {print $2}')
  done
  [[ $new_leader != "$leader" ]] || die "partition 0 still led by the dead node $leader after 30 s"
  log "node $new_leader leads $topic/0 after $((SECONDS - started)) s"
  sleep $((15 - (SECONDS - started) > 0 ? 15 - (SECONDS - started) : 0))
  kafka_cluster start-node "$leader" >&2
  wait_load
  stop_gateway a
  expect_all_acknowledged
  audit_and_record
}

# A slow broker: a default client quota (producer_byte_rate) throttles every producer to a
# fraction of the offered load for 15 s. Push-back must engage (503s), nothing is lost. (netem
# would be the other way, but this kernel has no sch_netem: see tests/fault/README.md.)
scenario_slow_broker() {
  use_single_broker
  kafka_yaml+=("delivery_timeout_ms: 5000")
  gateway_yaml+=("admission: {max_inflight_records: 200}")
  cleanup_steps+=("kafka_single unthrottle >/dev/null 2>&1")
  start_gateway a
  start_load a --connections 8 --batch 50 --records 24000 --rate 2000
  sleep 3
  log "throttling producers to 10 KB/s"
  kafka_single throttle 10000 >&2 2>&1
  sleep 15
  kafka_single unthrottle >&2 2>&1
  wait_load
  stop_gateway a
  (($(sim_total outcomes.503) > 0)) || die "no 503 while the broker was throttled: push-back never engaged"
  expect_all_acknowledged
  audit_and_record
}

# A second instance started with the same instance_id (so the same transactional ids) while the
# first is under load: the newcomer fences the first, which fails its batches (503) and reports
# not ready; its devices give up after a few retries, new load goes to the second. Whatever
# either acknowledged is in Kafka exactly once.
scenario_producer_fencing() {
  use_single_broker
  start_gateway a
  max_retries=2 start_load a --connections 4 --batch 50 --records 8000 --rate 1000
  sleep 3
  start_gateway b
  start_load b --connections 4 --batch 50 --records 8000 --rate 1000
  wait_load
  if curl -sf "http://127.0.0.1:${gateway_port[a]}/readyz" >/dev/null; then die "the fenced instance still reports ready"; fi
  stop_gateway a
  stop_gateway b
  (($(python3 -c "import json; print(json.load(open('$work/sim-1.json'))['acknowledged'])") == 8000)) ||
    die "the second instance did not acknowledge all of its load"
  audit_and_record
}

# The audit itself must be able to fail: with de-duplication off, the same records sent twice
# (same msg_ids) must show as duplicated, and an acknowledgement Kafka never got as lost.
scenario_audit_detects() {
  use_single_broker
  gateway_yaml+=("dedup: {max_entries: 0}")
  start_gateway a
  run_id=$run-same start_load a --connections 2 --batch 50 --records 1000
  wait_load
  run_id=$run-same start_load a --connections 2 --batch 50 --records 1000
  wait_load
  stop_gateway a
  echo "$run-same-never-sent" >>"$work/acks-1"
  cat "$work"/acks-* >"$work/acks"
  if "$sim_bin" audit --bootstrap "$bootstrap" --topic "$topic" --ack-log "$work/acks" --prefix "$run-" \
    >"$work/audit.json" 2>"$work/audit.err"; then
    die "the audit passed a topic with duplicates and a lost record"
  fi
  log "audit: $(cat "$work/audit.json")"
  [[ $(json_field "$work/audit.json" duplicated) == 1000 && $(json_field "$work/audit.json" lost) == 1 ]] ||
    die "expected 1000 duplicated and 1 lost"
}

[[ $# == 1 ]] && declare -F "scenario_$1" >/dev/null || {
  echo "usage: $0 $(declare -F | awk '/scenario_/ {sub("scenario_", "", $3); printf "%s%s", sep, $3; sep="|"}')" >&2
  exit 2
}
fault_begin "$1"
"scenario_$1"
fault_pass
