// The Teltonika wiki's worked examples ("Codec" page), shared by the unit and integration tests:
// whole frames as the tracker sends them, in hex.
#pragma once

#include <string>
#include <string_view>

namespace telegate::testing::teltonika {

inline constexpr std::string_view kHandshake = "000F333536333037303432343431303133";  // IMEI 356307042441013
inline constexpr std::string_view kImei = "356307042441013";
// Codec 8, 1 record (2019-06-10 10:04:46 UTC), CRC 0xC7CF.
inline constexpr std::string_view kCodec8 =
    "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F01F10000601A014E0000000000000000010000C7CF";
// Codec 8, 2 records, CRC 0x252C.
inline constexpr std::string_view kCodec8TwoRecords =
    "000000000000004308020000016B40D57B480100000000000000000000000000000001010101000000000000016B40D5C198010000000000000000000000000000000101010101000000020000252C";
// Codec 8 Extended, 1 record (2019-06-10 11:36:32 UTC), CRC 0x2994.
inline constexpr std::string_view kCodec8Extended =
    "000000000000004A8E010000016B412CEE000100000000000000000000000000000000010005000100010100010011001D00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994";
// Codec 8 over UDP: packet id 0xCAFE, AVL packet id 0x05, IMEI 352093086403655, 1 record.
inline constexpr std::string_view kUdpCodec8 =
    "003DCAFE0105000F33353230393330383634303336353508010000016B4F815B30010000000000000000000000000000000103021503010101425DBC000001";
inline constexpr std::string_view kUdpImei = "352093086403655";

// Hex text as bytes (the examples hold NUL bytes, so std::string rather than text).
inline std::string bytes(std::string_view hex) {
  const auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1]));
  return out;
}

}  // namespace telegate::testing::teltonika
