#!/usr/bin/env python3
"""Writes codecs/gt06/samples/*.gt06: what the GT06 tracker protocol hands the codec (protocol
number, content, serial number; framing and CRC stripped) from whole frames. The valid ones are
real frames from Traccar's Gt06ProtocolDecoderTest and the Concox GT06 protocol document; each
frame's CRC-ITU is checked here before it is used. Rerun after changing a frame."""
import pathlib

def crc_itu(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF

def payload(frame_hex: str) -> bytes:
    frame = bytes.fromhex(frame_hex)
    length_bytes = 1 if frame[0] == 0x78 else 2
    assert frame[-2:] == b"\r\n", frame_hex
    assert crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2], "big"), frame_hex
    return frame[2 + length_bytes:-4]

FRAMES = {
    # Traccar: 2015-10-20 14:21:11 UTC, 54.94535 N, 24.01762 E (its asserted values).
    "traccar-location-lithuania.valid.gt06": "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a",
    # Traccar: 0x12 with extra bytes after the LBS block, south and west flags set.
    "traccar-location-south-west.valid.gt06":
        "7878241216040e102c22cf00915ffb04c6016300195a02d402283b00753f400571040001dda4880d0a",
    # Traccar: GT06N 0x22 in Austria (MCC 232).
    "traccar-gps-lbs-austria.valid.gt06": "78782222120616083817c5050cc8c801a819d600152400e8011dbf003332000000004862500d0a",
    # Concox GT06 document: alarm packet, serial 0x0036, CRC 0x56A4.
    "concox-alarm.valid.gt06": "787825160B0B0F0E241DCF027AC8870C4657E60014020901CC00287D001F726506040101003656A40D0A",
}

def main() -> None:
    out = pathlib.Path(__file__).parent / "samples"
    out.mkdir(exist_ok=True)
    for name, frame in FRAMES.items():
        (out / name).write_bytes(payload(frame))
    alarm = payload(FRAMES["concox-alarm.valid.gt06"])
    # GT06N alarm (0x26) has the 0x16 layout: the same content under the other number.
    (out / "alarm-0x26.valid.gt06").write_bytes(b"\x26" + alarm[1:])
    location = bytearray(payload(FRAMES["traccar-location-lithuania.valid.gt06"]))
    # Course/status 0x0054 → bit 12 cleared: not positioned, refused per record.
    unpositioned = bytearray(location)
    unpositioned[17] &= 0xEF
    (out / "not-positioned.invalid.gt06").write_bytes(bytes(unpositioned))
    bad_date = bytearray(location)
    bad_date[2] = 13  # month 13
    (out / "month-13.invalid.gt06").write_bytes(bytes(bad_date))
    (out / "truncated.invalid.gt06").write_bytes(bytes(location[:20]))
    (out / "status-not-location.invalid.gt06").write_bytes(bytes.fromhex("134b0403000100"))
    (out / "alarm-bad-lbs-length.invalid.gt06").write_bytes(alarm[:19] + b"\x07" + alarm[20:])

if __name__ == "__main__":
    main()
