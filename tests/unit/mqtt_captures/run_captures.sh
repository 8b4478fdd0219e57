#!/usr/bin/env bash
# Regenerates the captures with mosquitto_pub / mosquitto_sub (Debian mosquitto-clients 2.0.11).
# The listener is capture.py on a loopback port. Output: *.bin next to this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
port=18830
capture() {  # capture NAME CLIENT ARGS...
  local name=$1; shift
  python3 capture.py "$port" "$name.bin" &
  local listener=$!
  sleep 0.5
  "$@" -h 127.0.0.1 -p "$port"
  wait "$listener"
  echo "$name.bin: $(stat -c %s "$name.bin") bytes"
  port=$((port + 1))
}
payload='{"lat":52.52,"lon":13.405,"ts":1700000000000}'

capture v311_publish_qos0 mosquitto_pub -V mqttv311 -i truck-1 -k 30 -t acme/truck-1/gps -m "$payload" -q 0
capture v311_publish_qos1 mosquitto_pub -V mqttv311 -i truck-1 -k 60 -u acme -P s3cret -t acme/truck-1/gps \
  -m "$payload" -q 1 -r
capture v311_publish_qos2 mosquitto_pub -V mqttv311 -i truck-1 -c -t acme/truck-1/gps -m "$payload" -q 2 \
  --will-topic acme/truck-1/status --will-payload offline --will-qos 1 --will-retain
capture v5_publish_qos0 mosquitto_pub -V mqttv5 -i truck-1 -k 30 -t acme/truck-1/gps -m "$payload" -q 0
capture v5_publish_qos1 mosquitto_pub -V mqttv5 -i truck-1 -u acme -P s3cret -t acme/truck-1/gps -m "$payload" -q 1 \
  -x 3600 -D connect receive-maximum 20 -D connect maximum-packet-size 65536 \
  -D connect topic-alias-maximum 8 -D connect request-problem-information 0 -D connect user-property fw 1.4.2 \
  -D publish payload-format-indicator 1 -D publish message-expiry-interval 120 \
  -D publish content-type application/json -D publish response-topic acme/truck-1/replies \
  -D publish correlation-data req-42 -D publish user-property unit metric -D publish topic-alias 1
capture v5_publish_qos2 mosquitto_pub -V mqttv5 -i truck-1 -t acme/truck-1/gps -m "$payload" -q 2 \
  --will-topic acme/truck-1/status --will-payload offline --will-qos 1 \
  -D will will-delay-interval 30 -D will content-type text/plain -D will user-property reason lost
capture v311_subscribe mosquitto_sub -V mqttv311 -i console-1 -t 'acme/+/gps' -t 'acme/#' -q 1 -E
capture v5_subscribe mosquitto_sub -V mqttv5 -i console-1 -t 'acme/+/gps' -t '$share/g1/acme/#' -q 2 -E \
  -D subscribe subscription-identifier 7 -D subscribe user-property role console
capture v5_unsubscribe mosquitto_sub -V mqttv5 -i console-1 -t 'acme/+/gps' -U 'acme/+/gps' -E
