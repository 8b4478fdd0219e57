#!/usr/bin/env python3
"""Teltonika trackers over TCP for bench/teltonika_kafka.sh: C connections, each logging in with
its own IMEI (350000000000000 + i) and sending F Codec 8 frames of R AVL records (a GPS fix and
11 I/O elements each), one at a time, each after the previous one's ack, as a tracker does.
Prints one JSON line: AVL records/s, canonical records/s (2 per AVL record), ack latency."""
import argparse, json, socket, struct, threading, time


def crc16_ibm(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(records: int, base_ms: int) -> bytes:
    body = bytearray([0x08, records])
    for i in range(records):
        body += struct.pack(">QBiiHHBH", base_ms + i * 1000, 0, 145069000 + i, 460569000 + i, 295, 87, 11, 48)
        body += bytes([0, 11, 4]) + b"".join(bytes([k, 1]) for k in (239, 240, 21, 200))
        body += bytes([4]) + b"".join(bytes([k]) + struct.pack(">H", 12345) for k in (24, 66, 67, 68))
        body += bytes([2]) + b"".join(bytes([k]) + struct.pack(">I", 1234567) for k in (16, 199))
        body += bytes([1, 78]) + struct.pack(">Q", 0x0102030405060708)
    body.append(records)
    return b"\0\0\0\0" + struct.pack(">I", len(body)) + bytes(body) + struct.pack(">I", crc16_ibm(body))


def tracker(index, args, latencies, failures):
    imei = str(350000000000000 + index).encode()
    with socket.create_connection(("127.0.0.1", args.port), timeout=30) as s:
        s.sendall(struct.pack(">H", len(imei)) + imei)
        if s.recv(1) != b"\x01":
            failures.append("login refused")
            return
        base = int(time.time() * 1000) - 3_600_000 + index * 10_000_000
        for f in range(args.frames):
            data = frame(args.records, base + f * args.records * 1000)
            started = time.monotonic()
            s.sendall(data)
            ack = b""
            while len(ack) < 4:
                chunk = s.recv(4 - len(ack))
                if not chunk:
                    failures.append("closed")
                    return
                ack += chunk
            latencies.append(time.monotonic() - started)
            if struct.unpack(">I", ack)[0] != args.records:
                failures.append("short ack")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--records", type=int, default=50)
    args = parser.parse_args()
    latencies, failures = [], []
    threads = [threading.Thread(target=tracker, args=(i, args, latencies, failures)) for i in range(args.connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    avl = len(latencies) * args.records
    pick = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else None
    print(json.dumps({"benchmark": "teltonika-tcp-kafka", "connections": args.connections, "frames_acked": len(latencies),
                      "avl_records_per_frame": args.records, "avl_records_per_second": round(avl / elapsed),
                      "records_per_second": round(2 * avl / elapsed), "ack_latency_ms": {"p50": pick(0.5), "p99": pick(0.99)},
                      "failures": len(failures)}))


if __name__ == "__main__":
    main()
