#!/usr/bin/env python3
"""Writes codecs/teltonika/samples (AVL data, the codec's input) and the framing fuzz corpus
tests/fuzz/corpus/tracker_teltonika (whole TCP/UDP frames) from the Teltonika wiki's worked
examples ("Codec" page: Codec 8, Codec 8 Extended, Codec 8 over UDP). Rerun after changing one."""
import pathlib

here = pathlib.Path(__file__).resolve().parent
corpus = here.parent.parent / "tests" / "fuzz" / "corpus" / "tracker_teltonika"

TCP = {
    "codec8-wiki": "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F01F10000601A014E0000000000000000010000C7CF",
    "codec8-two-records-wiki": "000000000000004308020000016B40D57B480100000000000000000000000000000001010101000000000000016B40D5C198010000000000000000000000000000000101010101000000020000252C",
    "codec8e-wiki": "000000000000004A8E010000016B412CEE000100000000000000000000000000000000010005000100010100010011001D00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994",
}
UDP = "003DCAFE0105000F33353230393330383634303336353508010000016B4F815B30010000000000000000000000000000000103021503010101425DBC000001"
HANDSHAKE = "000F333536333037303432343431303133"  # IMEI 356307042441013


def avl_data(frame: bytes) -> bytes:
    return frame[8:-4]


samples = here / "samples"
samples.mkdir(exist_ok=True)
corpus.mkdir(parents=True, exist_ok=True)
for name, text in TCP.items():
    frame = bytes.fromhex(text)
    (samples / f"{name}.valid.teltonika-avl").write_bytes(avl_data(frame))
    (corpus / f"tcp-{name}").write_bytes(b"\x00" + bytes.fromhex(HANDSHAKE) + frame)  # 0 = stream mode
udp = bytes.fromhex(UDP)
(samples / "codec8-udp-wiki.valid.teltonika-avl").write_bytes(udp[8 + 15:])
(corpus / "udp-codec8-wiki").write_bytes(b"\x01" + udp)  # first byte: 1 = datagram mode

codec8 = avl_data(bytes.fromhex(TCP["codec8-wiki"]))
(samples / "truncated.invalid.teltonika-avl").write_bytes(codec8[:30])
(samples / "count-mismatch.invalid.teltonika-avl").write_bytes(codec8[:-1] + b"\x02")
(samples / "unknown-codec.invalid.teltonika-avl").write_bytes(b"\x10" + codec8[1:])
(samples / "trailing-bytes.invalid.teltonika-avl").write_bytes(codec8 + b"\x00")
