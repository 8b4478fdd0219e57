#!/usr/bin/env python3
"""Where the gateway's CPU goes, by pipeline stage, from a perf profile of telegate.

    bench/perf_stages.py PERF_DATA [CPU_US_PER_RECORD]

Method: every sample's self time is given to a stage by its thread, library and symbol (first
matching rule below), since the release build keeps no frame pointers and perf's call chains
through libc are not reliable. librdkafka's own threads (rdk:*) are one stage whatever they
run; on telegate's threads, libc allocation, copying, locks and the kernel stay separate rows,
because their callers are not known. What no rule claims is "other", and the largest of its
symbols are listed (other_symbols), so that the bucket says what it holds. With
CPU_US_PER_RECORD the shares are also printed in µs per record. Prints one JSON object.
"""
import json
import re
import subprocess
import sys

# (stage, thread regex, dso regex, symbol regex): the first match wins.
RULES = [
    ("librdkafka threads (batching, lz4, broker I/O)", r"^rdk:", r"", r""),
    ("librdkafka produce (on the sink thread)", r"", r"librdkafka", r""),
    ("lz4", r"", r"liblz4", r""),
    ("de-duplication window", r"", r"^telegate$", r"DedupWindow"),
    ("decode (JSON codec, simdjson)", r"", r"simdjson", r""),
    ("decode (JSON codec, simdjson)", r"", r"^telegate$", r"codecs::(JsonCodec|Decoded|Canonical)|simdjson"
     r"|codecs::\(anonymous namespace\)::(field_of|get_text)|codecs::(parse_message_type|to_string)"),
    ("validate", r"", r"^telegate$", r"codecs::validate|Validation|codecs::\(anonymous namespace\)::(check_range|id_problem|id_reason)"),
    ("envelope (Protobuf, tg-route, topic)", r"", r"protobuf", r""),
    ("envelope (Protobuf, tg-route, topic)", r"", r"^telegate$", r"envelope::|telegate::v1::"),
    ("admission (quotas, in-flight budget)", r"", r"^telegate$", r"InflightBudget|Quotas|TokenBucket|admit"),
    ("sink hand-off and commit (Kafka sink)", r"", r"^telegate$", r"KafkaSink|sinks::"),
    ("metrics", r"", r"prometheus", r""),
    ("HTTP parse, I/O and response", r"", r"^telegate$", r"beast|asio|HttpSession|HttpListener|outcome_body|http"),
    ("pipeline glue (ingest, outcome)", r"", r"^telegate$", r"gateway::"),
    ("telegate, other", r"", r"^telegate$", r""),
    ("allocation (malloc/free: libc, or the linked jemalloc/mimalloc)", r"", r"libc",
     r"malloc|free|_int_|unlink_chunk|consolidate|tcache"),
    ("allocation (malloc/free: libc, or the linked jemalloc/mimalloc)", r"", r"jemalloc|mimalloc", r""),
    ("libc copies (memmove/memcpy/memset)", r"", r"libc", r"mem(move|cpy|set)"),
    ("libc compares (memcmp/strlen/memchr)", r"", r"libc", r"mem(cmp|chr)|str(len|cmp|chr)"),
    # On the sink thread these are librdkafka's per-message locks (rd_kafka_producev, the
    # delivery reports); on the listener threads, the de-duplication shards and the recycler.
    ("locks (libc mutex/rwlock/futex)", r"", r"libc", r"pthread_(mutex|rwlock|cond)|mtx_|futex|lll_|condvar"),
    ("clock reads (vdso)", r"", r"vdso", r""),
    ("clock reads (vdso)", r"", r"libc", r"clock_gettime|gettimeofday"),
    ("libc system-call wrappers (epoll_wait, recvmsg, sendmsg, write)", r"", r"libc",
     r"epoll|recv|send|write|read|syscall|disable_asynccancel|enable_asynccancel"),
    # zlib's crc32 is librdkafka's consistent partitioner hashing each record's key.
    ("librdkafka produce (on the sink thread)", r"", r"libz", r""),
    # SHA-256 of each request's bearer token (and TLS, where it is on).
    ("authentication (OpenSSL)", r"", r"libcrypto|libssl", r""),
    ("C++ runtime (libstdc++, ld.so TLS look-ups)", r"", r"libstdc\+\+|ld-linux", r""),
    ("kernel (socket I/O, wake-ups) on telegate threads", r"", r"kernel", r""),
    ("other", r"", r"", r""),
]
# How many of the symbols left in "other" the report names, largest first.
UNATTRIBUTED_LISTED = 10


def main():
    data = sys.argv[1]
    cpu_us = float(sys.argv[2]) if len(sys.argv) > 2 else None
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "comm,dso,sym", "-g", "none", "--stdio",
         "--percent-limit", "0", "--field-separator", "\t"],
        capture_output=True, text=True, check=True).stdout
    stages = {}
    unattributed = {}
    for line in report.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 4 or not fields[0].strip().endswith("%"):
            continue
        share = float(fields[0].strip().rstrip("%"))
        thread, dso, symbol = fields[1].strip(), fields[2].strip(), fields[3].strip()
        for stage, thread_re, dso_re, symbol_re in RULES:
            if re.search(thread_re, thread) and re.search(dso_re, dso) and re.search(symbol_re, symbol):
                stages[stage] = stages.get(stage, 0.0) + share
                if stage == "other":
                    unattributed[(thread, dso, symbol)] = unattributed.get((thread, dso, symbol), 0.0) + share
                break
    # perf's percentages of one report can add up to slightly more than 100: normalise.
    total = sum(stages.values()) or 1.0
    rows = sorted(((stage, share * 100 / total) for stage, share in stages.items()), key=lambda item: -item[1])
    print(json.dumps({"benchmark": "gateway-cpu-by-stage",
                      "stages": [{"stage": stage, "percent": round(share, 1),
                                  **({"us_per_record": round(share * cpu_us / 100, 2)} if cpu_us else {})}
                                 for stage, share in rows],
                      "other_symbols": [{"thread": thread, "dso": dso, "symbol": symbol,
                                         "percent": round(share * 100 / total, 2)}
                                        for (thread, dso, symbol), share in
                                        sorted(unattributed.items(), key=lambda item: -item[1])[:UNATTRIBUTED_LISTED]]}))


if __name__ == "__main__":
    main()
