#!/usr/bin/env python3
"""Records the raw bytes a real MQTT client sends, as test vectors for gateway/mqtt.

Listens on 127.0.0.1:<port>, accepts ONE connection, answers just enough for the client to go
on (CONNACK, PUBACK, PUBREC/PUBCOMP, SUBACK, UNSUBACK, PINGRESP; v3.1.1 or v5 forms as the
CONNECT asked) and writes every byte the client sent to <out.bin>, unchanged, until the client
closes the connection. Deliberately independent of telegate's own code: it frames with the
Remaining Length only and looks at nothing else, so the captures check our decoder against
the client, not against itself. See README.md for the commands that produced each capture.

usage: capture.py <port> <out.bin>
"""
import socket
import sys


def read_frames(buffer):
    """Yields (first_byte, body, rest) for each complete frame at the start of buffer."""
    while len(buffer) >= 2:
        length, multiplier, i = 0, 1, 1
        while True:
            if i >= len(buffer):
                return
            byte = buffer[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if byte & 0x80 == 0:
                break
        if len(buffer) < i + length:
            return
        yield buffer[0], buffer[i:i + length], i + length
        buffer = buffer[i + length:]


def main():
    port, out_path = int(sys.argv[1]), sys.argv[2]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(20)
    conn, _ = server.accept()
    conn.settimeout(10)
    recorded, pending, v5 = bytearray(), bytearray(), False
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            recorded += chunk
            pending += chunk
            consumed = 0
            for first, body, size in read_frames(bytes(pending)):
                consumed += size
                kind, reply = first >> 4, b""
                if kind == 1:  # CONNECT: protocol level is the byte after "\x00\x04MQTT"
                    v5 = body[6] == 5
                    reply = b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00"
                elif kind == 3:  # PUBLISH
                    qos = (first >> 1) & 3
                    if qos:
                        topic_len = (body[0] << 8) | body[1]
                        pid = body[2 + topic_len:4 + topic_len]
                        reply = (b"\x40\x02" if qos == 1 else b"\x50\x02") + pid
                elif kind == 6:  # PUBREL
                    reply = b"\x70\x02" + body[:2]
                elif kind == 8:  # SUBSCRIBE: grant what was asked, QoS taken from each option byte
                    pos, codes = 2, bytearray()
                    if v5:
                        prop_len, shift = 0, 0
                        while True:
                            b = body[pos]; pos += 1
                            prop_len |= (b & 0x7F) << shift; shift += 7
                            if not b & 0x80:
                                break
                        pos += prop_len
                    while pos < len(body):
                        n = (body[pos] << 8) | body[pos + 1]
                        codes.append(body[pos + 2 + n] & 3)
                        pos += 3 + n
                    vh = body[:2] + (b"\x00" if v5 else b"")
                    reply = bytes([0x90, len(vh) + len(codes)]) + vh + codes
                elif kind == 10:  # UNSUBSCRIBE
                    # v5: no properties and one Success (the captures unsubscribe one filter)
                    reply = b"\xb0\x04" + body[:2] + b"\x00\x00" if v5 else b"\xb0\x02" + body[:2]
                elif kind == 12:  # PINGREQ
                    reply = b"\xd0\x00"
                if reply:
                    conn.sendall(reply)
            del pending[:consumed]
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass  # the client is gone: what it sent so far is the capture
    finally:
        conn.close()
        server.close()
    with open(out_path, "wb") as out:
        out.write(recorded)


if __name__ == "__main__":
    main()
