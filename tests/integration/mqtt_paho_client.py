#!/usr/bin/env python3
"""Paho (Eclipse paho-mqtt) as a device, for the MQTT integration test.

  mqtt_paho_client.py resend  HOST PORT VERSION DEVICE TOKEN TOPIC QOS PAYLOAD_FILE CLIENT_ID
      Publishes once with a persistent session (clean_session/clean_start false), cuts the TCP
      connection before the ack can arrive (the gateway under test commits slowly), and lets Paho
      reconnect with the same client id and resend the unacknowledged message (DUP) itself.
      Prints one JSON line: {"acked": bool, "connects": n, "seconds": s}.
  mqtt_paho_client.py outage HOST PORT VERSION DEVICE TOKEN TOPIC QOS PAYLOAD_FILE WAIT_S
      Publishes once with a persistent session and waits up to WAIT_S seconds for the ack,
      letting Paho reconnect (every 1-2 s) and resend (DUP) whenever the gateway closes the
      connection without one. Prints {"acked": bool, "connects": n, "seconds": s}.
  mqtt_paho_client.py latency HOST PORT VERSION DEVICE TOKEN TOPIC QOS PAYLOAD_FILE COUNT
      Publishes COUNT messages one after the other, each after the previous one's ack (QoS 1/2),
      and prints {"latencies": [seconds, ...]}: how long each ack took.

VERSION is 3 (MQTT 3.1.1) or 5. Exit status 0 when every message was acknowledged.
"""
import json
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def make_client(version, client_id, clean, device, token):
    protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
    kwargs = {"client_id": client_id, "protocol": protocol}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = clean
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    client.username_pw_set(device, token)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    return client


def connect(client, version, host, port, clean):
    if version == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0 if clean else 300
        client.connect(host, port, keepalive=30, clean_start=clean, properties=properties)
    else:
        client.connect(host, port, keepalive=30)


def resend(host, port, version, device, token, topic, qos, payload, client_id):
    client = make_client(version, client_id, False, device, token)
    connects = []
    connected = threading.Event()

    def on_connect(_client, _userdata, flags, reason_code, _properties):
        connects.append((str(reason_code), bool(flags.session_present)))
        if not reason_code.is_failure:
            connected.set()

    client.on_connect = on_connect
    connect(client, version, host, port, False)
    client.loop_start()
    started = time.monotonic()
    if not connected.wait(10):
        print(json.dumps({"acked": False, "error": "no CONNACK", "connects": connects}))
        return 1
    info = client.publish(topic, payload, qos=qos)
    # The gateway holds the ack until its (slow) commit: cut the connection before that.
    time.sleep(0.3)
    acked_before_cut = info.is_published()
    client.socket().shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + 30
    while not info.is_published() and time.monotonic() < deadline:
        time.sleep(0.05)
    acked = info.is_published()
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"acked": acked, "acked_before_cut": acked_before_cut, "connects": connects,
                      "seconds": round(time.monotonic() - started, 3)}))
    return 0 if acked and not acked_before_cut else 1


def outage(host, port, version, device, token, topic, qos, payload, wait_s):
    client = make_client(version, "paho-outage-%d" % int(time.time() * 1000), False, device, token)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    connects = []
    client.on_connect = lambda _client, _userdata, _flags, reason_code, _properties: connects.append(str(reason_code))
    connect(client, version, host, port, False)
    client.loop_start()
    started = time.monotonic()
    info = client.publish(topic, payload, qos=qos)
    info.wait_for_publish(timeout=wait_s)
    acked = info.is_published()
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"acked": acked, "connects": len(connects), "seconds": round(time.monotonic() - started, 3)}))
    return 0 if acked else 1


def latency(host, port, version, device, token, topic, qos, payload, count):
    client = make_client(version, "paho-latency-%d" % int(time.time() * 1000), True, device, token)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        info = client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            print(json.dumps({"latencies": latencies, "error": "not acknowledged"}))
            return 1
        latencies.append(round(time.monotonic() - started, 4))
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"latencies": latencies}))
    return 0


def main(argv):
    mode, host, port, version, device, token, topic, qos, payload_file, extra = argv[1:11]
    with open(payload_file, "rb") as file:
        payload = file.read()
    if mode == "resend":
        return resend(host, int(port), version, device, token, topic, int(qos), payload, extra)
    if mode == "outage":
        return outage(host, int(port), version, device, token, topic, int(qos), payload, float(extra))
    if mode == "latency":
        return latency(host, int(port), version, device, token, topic, int(qos), payload, int(extra))
    print("unknown mode " + mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
