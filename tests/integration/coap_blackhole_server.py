#!/usr/bin/env python3
"""A CoAP endpoint that never answers the first client endpoint (address, port) it hears from
and answers every confirmable request of any other with an empty 2.04 ACK.

For telegate-sim's CoAP lanes: a lane whose request timed out must resend from a new session,
not queue its retry behind libcoap's retransmissions of the lost one. Standard library only: the
answer is the fixed 4-byte header (RFC 7252 §3) plus the request's token.

usage: coap_blackhole_server.py PORT_FILE   (binds 127.0.0.1:0, writes the port; exits after 3 s
       without a datagram)
"""
import os
import socket
import sys

CON, ACK = 0, 2
CREATED = (2 << 5) | 4  # 2.04

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(sock.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])

sock.settimeout(3)
ignored = None
while True:
    try:
        data, peer = sock.recvfrom(65536)
    except socket.timeout:
        sys.exit(0)
    if len(data) < 4 or (data[0] >> 6) != 1 or ((data[0] >> 4) & 3) != CON:
        continue
    if ignored is None:
        ignored = peer
    if peer == ignored:
        continue
    token_length = data[0] & 0x0F
    header = bytes([(1 << 6) | (ACK << 4) | token_length, CREATED]) + data[2:4]
    sock.sendto(header + data[4:4 + token_length], peer)
