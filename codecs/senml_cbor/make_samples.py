#!/usr/bin/env python3
"""Writes the binary SenML CBOR samples in samples/ (rerun after changing one; commit both).

CBOR is written by the small encoder below (RFC 8949 preferred serialization, float64 for
non-integers) so that no package is needed. The JSON-equivalent samples are encoded from the
SenML JSON codec's own samples, so the unit tests can compare both decodings record for record; the RFC's own CBOR example is
compared with the JSON codec's rfc8428-multiple-measurements sample.
"""
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
JSON_SAMPLES = HERE.parent / "senml" / "samples"

# RFC 8428 Table 4.
LABELS = {"bver": -1, "bn": -2, "bt": -3, "bu": -4, "bv": -5, "bs": -6, "n": 0, "u": 1, "v": 2,
          "vs": 3, "vb": 4, "s": 5, "t": 6, "ut": 7, "vd": 8}


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError(n)


def enc(value):
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(enc(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(enc(k) + enc(v) for k, v in value.items())
    raise TypeError(value)


class Raw:
    """Bytes written as they are (indefinite lengths, tags, half floats, broken items)."""

    def __init__(self, data):
        self.data = data


def senml_to_cbor(pack):
    """A SenML JSON pack with integer labels; floats that are whole numbers stay integers."""
    def label(key):
        return LABELS.get(key, key)
    return [{label(k): v for k, v in record.items()} if isinstance(record, dict) else record for record in pack]


# RFC 8428 §6's CBOR example, byte for byte as the RFC prints it: the §5.1.3 "multiple
# measurements" pack (bt, bu, bver, relative times, and one value as a half float).
RFC8428_CBOR = bytes.fromhex("""
87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a
31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a
22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00
67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06
66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06
24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75
72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc
cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f
f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e
74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e
74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67
63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33
33 33 33""")


def write(name, data):
    (SAMPLES / name).write_bytes(data)


def main():
    assert len(RFC8428_CBOR) == 0xc3, "the RFC's dump ends at offset 00c3"
    write("rfc8428-section6.valid.senml+cbor", RFC8428_CBOR)
    for stem in ("rfc8428-multiple-datapoints", "rfc8428-single-datapoint", "base-value-sum-boolean"):
        pack = json.loads((JSON_SAMPLES / f"{stem}.valid.senml+json").read_text())
        write(f"{stem}.valid.senml+cbor", enc(senml_to_cbor(pack)))

    # What CBOR allows beyond JSON: indefinite lengths, a chunked name, a half float, a tag-4
    # decimal fraction (RFC 8428 §6) and the self-described CBOR tag 55799 on the pack.
    indefinite = (b"\xd9\xd9\xf7" + b"\x9f" +
                  b"\xbf" + enc(-2) + b"\x7f" + enc("dev") + enc("ice/") + b"\xff" +
                  enc(0) + enc("temp") + enc(1) + enc("Cel") + enc(2) + b"\xf9\x4d\x00" + b"\xff" +
                  enc({0: "humidity", 1: "%RH", 2: Raw(b"\xc4" + enc([-1, 455]))}) +
                  b"\xff")
    write("indefinite-decimal-half.valid.senml+cbor", indefinite)

    # Invalid bodies.
    write("truncated.invalid.senml+cbor", RFC8428_CBOR[:-5])
    write("map-not-pack.invalid.senml+cbor", enc({0: "a", 2: 1}))
    write("trailing.invalid.senml+cbor", RFC8428_CBOR + b"\x00")
    write("record-problems.invalid.senml+cbor", enc([
        {0: "label", 3: "text"},          # vs: no numeric reading
        {0: "no-value"},                  # no v, vb or s
        {0: "bad name!", 2: 1},           # invalid resolved name
        {0: "x", 2: "1"},                 # v as text
        {0: "y", 2: 1, "must_": 1},       # must-understand extension
        7,                                # not a map
        {Raw(b"\xfa\x3f\x80\x00\x00"): "float label", 0: "z", 2: 1},  # label of a wrong type
        {0: "w", 2: Raw(b"\xc4" + enc([1.5, 2]))},                      # bad decimal fraction
        {0: "q", 2: [1, 2]},              # value is a container
    ]))
    write("deep-nesting.invalid.senml+cbor", enc([{0: "deep", 2: 1, "x": Raw(b"\x81" * 200 + b"\x00")}]))
    # An array that declares 2^32 records and a string that declares 2^63 bytes, in a few bytes.
    write("huge-array-length.invalid.senml+cbor", b"\x9b" + struct.pack(">Q", 1 << 32) + enc({0: "a", 2: 1}))
    write("huge-string-length.invalid.senml+cbor", b"\x81\xa1\x00\x7b" + struct.pack(">Q", 1 << 63) + b"abc")


if __name__ == "__main__":
    main()
