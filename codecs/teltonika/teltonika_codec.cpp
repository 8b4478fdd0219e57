#include "teltonika/teltonika_codec.hpp"

#include <fmt/format.h>

#include <bit>
#include <optional>

#include "telegate/codecs/units.hpp"

namespace telegate::codecs {

namespace {

// Big-endian reads over the body; every read checks the bytes left first, so a count or a
// length from the wire is never trusted to size anything.
class Reader {
 public:
  explicit Reader(std::string_view body) : body_(body) {}

  std::optional<std::uint64_t> read(std::size_t bytes) {
    if (body_.size() - offset_ < bytes) return std::nullopt;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < bytes; ++i) value = (value << 8) | static_cast<std::uint8_t>(body_[offset_ + i]);
    offset_ += bytes;
    return value;
  }
  bool skip(std::size_t bytes) {
    if (body_.size() - offset_ < bytes) return false;
    offset_ += bytes;
    return true;
  }
  std::size_t offset() const noexcept { return offset_; }
  std::size_t left() const noexcept { return body_.size() - offset_; }
  std::string_view since(std::size_t start) const noexcept { return body_.substr(start, offset_ - start); }

 private:
  std::string_view body_;
  std::size_t offset_ = 0;
};

CodecError malformed(std::string message, std::size_t offset) {
  return CodecError{CodecErrc::malformed_body, std::move(message), offset};
}

// FNV-1a over one AVL record's bytes: with the IMEI and the timestamp it names the record, so
// a frame the tracker resends (no ack seen) carries the same msg_ids and is de-duplicated.
std::uint32_t fnv1a32(std::string_view bytes) noexcept {
  std::uint32_t hash = 2166136261u;
  for (const char byte : bytes) hash = (hash ^ static_cast<std::uint8_t>(byte)) * 16777619u;
  return hash;
}

// GPS element: coordinates are two's complement ×10⁻⁷ degrees, speed km/h.
std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (const char byte : bytes) {
    out += kDigits[static_cast<std::uint8_t>(byte) >> 4];
    out += kDigits[static_cast<std::uint8_t>(byte) & 0x0F];
  }
  return out;
}

struct Gps {
  std::int32_t lon = 0;
  std::int32_t lat = 0;
  std::int16_t altitude = 0;
  std::uint16_t angle = 0;
  std::uint8_t satellites = 0;
  std::uint16_t speed_kmh = 0;
};

struct AvlRecord {
  std::int64_t timestamp_ms = 0;
  std::uint8_t priority = 0;
  Gps gps;
};

}  // namespace

std::expected<void, CodecError> TeltonikaCodec::decode(std::string_view body, const DecodeContext& context,
                                                       DecodedBatch& out) {
  if (context.content_type != kTeltonikaContentType) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the teltonika codec reads {}, not '{}'", kTeltonikaContentType,
                                                  context.content_type),
                                      std::nullopt});
  }
  if (body.empty()) return std::unexpected(CodecError{CodecErrc::empty_body, "empty AVL data", 0});
  Reader in(body);
  const auto codec_id = in.read(1);
  const bool extended = *codec_id == kTeltonikaCodec8Extended;
  if (!extended && *codec_id != kTeltonikaCodec8) {
    return std::unexpected(malformed(fmt::format("codec id 0x{:02x}: only Codec 8 (0x08) and 8 Extended (0x8e) carry records", *codec_id), 0));
  }
  const auto declared = in.read(1);
  if (!declared) return std::unexpected(malformed("no record count", 1));
  if (*declared > limits_.max_records) {
    return std::unexpected(CodecError{CodecErrc::too_many_records,
                                      fmt::format("{} records, at most {}", *declared, limits_.max_records), 1});
  }
  // IO ids and counts are 1 byte in Codec 8 and 2 bytes in 8 Extended.
  const std::size_t id_bytes = extended ? 2 : 1;
  const double kmh = metres_per_second_per(SpeedUnit::kmh);
  std::vector<SensorReading> readings;
  std::vector<Attribute> attributes;
  for (std::size_t index = 0; index < *declared; ++index) {
    const std::size_t start = in.offset();
    AvlRecord avl;
    const auto ts = in.read(8), priority = in.read(1), lon = in.read(4), lat = in.read(4), alt = in.read(2),
               angle = in.read(2), sats = in.read(1), speed = in.read(2);
    if (!speed) return std::unexpected(malformed(fmt::format("record {} truncated in its GPS element", index), in.offset()));
    avl.timestamp_ms = static_cast<std::int64_t>(*ts);
    avl.priority = static_cast<std::uint8_t>(*priority);
    avl.gps = Gps{std::bit_cast<std::int32_t>(static_cast<std::uint32_t>(*lon)),
                  std::bit_cast<std::int32_t>(static_cast<std::uint32_t>(*lat)),
                  std::bit_cast<std::int16_t>(static_cast<std::uint16_t>(*alt)), static_cast<std::uint16_t>(*angle),
                  static_cast<std::uint8_t>(*sats), static_cast<std::uint16_t>(*speed)};

    // IO element: event id, total count, then the 1-, 2-, 4- and 8-byte groups (and 8E's
    // variable-length group), each a count followed by (id, value) pairs.
    readings.clear();
    attributes.clear();
    readings.push_back({"priority", static_cast<double>(avl.priority), ""});
    readings.push_back({"satellites", static_cast<double>(avl.gps.satellites), ""});
    if (!in.read(id_bytes) || !in.read(id_bytes)) {
      return std::unexpected(malformed(fmt::format("record {} truncated in its IO header", index), in.offset()));
    }
    for (const std::size_t width : {1, 2, 4, 8}) {
      const auto count = in.read(id_bytes);
      if (!count) return std::unexpected(malformed(fmt::format("record {} truncated in its IO counts", index), in.offset()));
      for (std::uint64_t i = 0; i < *count; ++i) {
        const auto id = in.read(id_bytes);
        const auto value = id ? in.read(width) : std::nullopt;
        if (!value) return std::unexpected(malformed(fmt::format("record {} truncated in its {}-byte IO elements", index, width), in.offset()));
        // Unsigned as the wiki's AVL ID tables mostly are; an 8-byte value above 2^53 loses
        // its low bits in the double (the envelope's reading value).
        readings.push_back({fmt::format("io_{}", *id), static_cast<double>(*value), ""});
      }
    }
    if (extended) {
      const auto count = in.read(2);
      if (!count) return std::unexpected(malformed(fmt::format("record {} truncated in its NX count", index), in.offset()));
      for (std::uint64_t i = 0; i < *count; ++i) {
        const auto id = in.read(2);
        const auto length = id ? in.read(2) : std::nullopt;
        const std::size_t start_of_value = in.offset();
        if (!length || !in.skip(*length)) {
          return std::unexpected(malformed(fmt::format("record {} truncated in its variable-length IO elements", index), in.offset()));
        }
        // As hex while that fits a string field; a longer element is kept as its length.
        if (2 * *length <= limits_.max_string_bytes) {
          attributes.push_back({fmt::format("io_{}", *id), hex(in.since(start_of_value))});
        } else {
          readings.push_back({fmt::format("io_{}_len", *id), static_cast<double>(*length), "bytes"});
        }
      }
    }

    const std::string msg_id = fmt::format("{}-{}-{}-{:08x}", context.device_id, avl.timestamp_ms, avl.priority,
                                           fnv1a32(in.since(start)));
    const bool has_fix = avl.gps.satellites > 0 && (avl.gps.lat != 0 || avl.gps.lon != 0);
    if (has_fix) {
      CanonicalRecord& record = out.append(index);
      record.device_id.assign(context.device_id);
      record.type = MessageType::location;
      record.event_time_ms = avl.timestamp_ms;
      record.msg_id = msg_id + "-l";
      record.location.lat = avl.gps.lat * 1e-7;
      record.location.lon = avl.gps.lon * 1e-7;
      record.location.alt = static_cast<double>(avl.gps.altitude);
      record.location.heading = static_cast<double>(avl.gps.angle % 360);
      record.location.speed = avl.gps.speed_kmh * kmh;
    }
    if (readings.size() + attributes.size() > limits_.max_readings) {
      out.reject(index, "readings", fmt::format("{} IO elements, at most {} per record",
                                                readings.size() + attributes.size() - 2, limits_.max_readings - 2));
      continue;
    }
    CanonicalRecord& record = out.append(index);
    record.device_id.assign(context.device_id);
    record.type = MessageType::sensor;
    record.event_time_ms = avl.timestamp_ms;
    record.msg_id = msg_id + "-s";
    record.readings.assign(readings.begin(), readings.end());
    record.attributes.assign(attributes.begin(), attributes.end());
  }
  const auto repeated = in.read(1);
  if (!repeated) return std::unexpected(malformed("no closing record count", in.offset()));
  if (*repeated != *declared) {
    return std::unexpected(malformed(fmt::format("record counts differ: {} before the records, {} after", *declared, *repeated), in.offset() - 1));
  }
  if (in.left() != 0) return std::unexpected(malformed(fmt::format("{} bytes after the records", in.left()), in.offset()));
  return {};
}

}  // namespace telegate::codecs
