#!/usr/bin/env bash
# Writes the binary samples of the protobuf codec from their text form (samples-src/*.txtpb,
# protobuf text format), plus a few broken bodies. Rerun after editing telemetry.proto or a
# .txtpb, and commit both. Needs protoc (scripts/install-deps installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
encode() { protoc --encode=telegate.v1.TelemetryBatch -I "$here" telemetry.proto < "samples-src/$1.txtpb"; }

for valid in location-full location-minimal mixed-batch; do
  encode "$valid" > "samples/$valid.valid.protobuf"
done
encode record-problems > samples/record-problems.invalid.protobuf
# Cut inside the last record: a length prefix that runs past the end.
full=$(stat -c %s samples/mixed-batch.valid.protobuf)
head -c $((full - 3)) samples/mixed-batch.valid.protobuf > samples/truncated.invalid.protobuf
# records (field 1, length-delimited) declaring 200 bytes with 2 present.
printf '\x0a\xc8\x01\x10\x01' > samples/bad-length.invalid.protobuf
# msg_id holding bytes that are not UTF-8 (proto3 strings must be).
printf '\x0a\x0a\x0a\x02\xc3\x28\x10\x01\x1a\x02\x09\x00' > samples/not-utf8.invalid.protobuf
# JSON sent with the protobuf content type.
printf '{"lat":1,"lon":2}' > samples/json-body.invalid.protobuf
