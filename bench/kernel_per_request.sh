#!/usr/bin/env bash
# What the gateway asks of the kernel per HTTP request, by thread: context switches, CPU (user,
# system, and the scheduler's exact run time), and for the whole process — committer threads,
# which exit after their transaction, included — syscalls, page faults and context switches
# counted by perf stat. Same load as bench/http_kafka.sh (its Kafka broker, config and
# telegate-sim), without the producer baseline.
#   bench/kernel_per_request.sh [records] [batch] [connections] [devices]
# TELEGATE_BENCH_BUILD=DIR as for http_kafka.sh. Needs perf (root, or perf_event_paranoid ≤ 1).
# telegate's own threads all carry the name "telegate": they are told apart by how long after
# the main thread they were created (+N in the thread id) and by what they wait in at the end
# (wchan: the HTTP I/O thread waits in do_epoll_wait, the sink thread in a futex).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gateway_lib.sh
http_bench_start "$@"

# tid, name, voluntary and involuntary switches, utime + stime (ticks), run time (ns), wchan
threads() {
  for task in /proc/$gateway_pid/task/*; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${task##*/}" "$(cat $task/comm)" \
      "$(awk '/^voluntary_ctxt/ {print $2}' $task/status)" "$(awk '/^nonvoluntary_ctxt/ {print $2}' $task/status)" \
      "$(awk '{print $14, $15}' $task/stat)" "$(awk '{print $1}' $task/schedstat)" "$(cat $task/wchan)"
  done 2>/dev/null
}
events=context-switches,page-faults,cpu-migrations,net:net_dev_queue
for call in recvmsg sendmsg epoll_wait epoll_ctl futex write read poll clone3 timerfd_settime; do
  events+=,syscalls:sys_enter_$call
done
before=$(threads)
perf stat -x, -e "$events" -p $gateway_pid -o "$work/perf-stat.csv" & perf_pid=$!
sleep 0.5  # perf attached to every thread
http_sim "$records" >"$work/sim.json" || true
after=$(threads)
kill -INT $perf_pid; wait $perf_pid || true

python3 - "$gateway_pid" "$records" "$batch" "$work/perf-stat.csv" "$work/sim.json" "$before" "$after" <<'PY'
import collections, json, os, sys
pid, records, batch, stat_csv, sim_json, before, after = sys.argv[1:]
records, batch = int(records), int(batch)
requests = records / batch
ticks = os.sysconf("SC_CLK_TCK")
def parse(text):
    rows = {}
    for line in text.splitlines():
        tid, name, vol, invol, times, run_ns, wchan = line.split("\t")
        user, system = times.split()
        rows[tid] = (name, int(vol), int(invol), int(user), int(system), int(run_ns), wchan)
    return rows
old, new = parse(before), parse(after)
groups = collections.defaultdict(lambda: [0] * 6)
for tid, (name, vol, invol, user, system, run_ns, wchan) in new.items():
    prev = old.get(tid, (name, 0, 0, 0, 0, 0, ""))
    if name == "telegate":
        name = f"telegate +{int(tid) - int(pid)} ({wchan or '-'})"
    group = groups[name]
    group[0] += 1
    for i, value in enumerate((vol, invol, user, system, run_ns)):
        group[i + 1] += value - prev[i + 1]
sim = json.load(open(sim_json))
print(f"{records} records, {batch} per request, {int(requests)} requests; outcomes {sim['outcomes']}")
print(f"{'thread (live at the end)':44} {'n':>2} {'vol/req':>8} {'invol/req':>9} {'user µs/rec':>11} {'sys µs/rec':>10} {'run µs/rec':>10}")
for name, (n, vol, invol, user, system, run_ns) in sorted(groups.items(), key=lambda item: -item[1][5]):
    print(f"{name:44} {n:2} {vol / requests:8.3f} {invol / requests:9.3f} {user * 1e6 / ticks / records:11.3f} "
          f"{system * 1e6 / ticks / records:10.3f} {run_ns / 1e3 / records:10.3f}")
print("whole process, exited threads included (perf stat), per request:")
counts = []
for line in open(stat_csv):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0].replace(".", "").isdigit():
        counts.append(f"{fields[2].replace('syscalls:sys_enter_', '')} {float(fields[0]) / requests:.3f}")
print("  " + ", ".join(counts))
PY
