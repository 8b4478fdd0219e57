#include "gt06/gt06_codec.hpp"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <optional>

namespace telegate::codecs {

namespace {

constexpr std::uint8_t kLocation = 0x12;
constexpr std::uint8_t kAlarm = 0x16;
constexpr std::uint8_t kLocationN = 0x22;
constexpr std::uint8_t kAlarmN = 0x26;

// Date-time 6, GPS info length/satellites 1, latitude 4, longitude 4, speed 1, course/status 2.
constexpr std::size_t kGpsBytes = 18;
// MCC 2, MNC 1, LAC 2, cell id 3.
constexpr std::size_t kCellBytes = 8;
// 0x22: ACC, data upload mode, GPS real-time re-upload.
constexpr std::size_t kLocationNExtraBytes = 3;
// 0x16/0x26 after the LBS block: terminal information, voltage level, GSM signal, alarm, language.
constexpr std::size_t kStatusBytes = 5;
constexpr std::size_t kSerialBytes = 2;
constexpr double kMinutesScale = 30000.0 * 60.0;  // coordinates are 1/30000 minute
constexpr double kKmhToMps = 1000.0 / 3600.0;

// Course/status word bits.
constexpr unsigned kPositioned = 1u << 12;
constexpr unsigned kWest = 1u << 11;
constexpr unsigned kNorth = 1u << 10;
constexpr unsigned kCourseMask = 0x3FF;

// Big-endian fields of the packet, bounds checked once by the caller against the layout.
class Reader {
 public:
  explicit Reader(std::string_view bytes) noexcept : bytes_(bytes) {}
  std::uint32_t read(std::size_t width) noexcept {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value = value << 8 | static_cast<unsigned char>(bytes_[at_++]);
    return value;
  }
  void skip(std::size_t count) noexcept { at_ += count; }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

std::unexpected<CodecError> malformed(std::string message, std::size_t offset) {
  return std::unexpected(CodecError{CodecErrc::malformed_body, std::move(message), offset});
}

// YY MM DD hh mm ss (20YY) on the tracker's clock, as Unix ms; nullopt when not a date-time.
std::optional<std::int64_t> packet_time_ms(Reader& in, int offset_min) {
  const unsigned year = in.read(1), month = in.read(1), day = in.read(1);
  const unsigned hour = in.read(1), minute = in.read(1), second = in.read(1);
  const std::chrono::year_month_day date{std::chrono::year(2000 + static_cast<int>(year)), std::chrono::month(month),
                                         std::chrono::day(day)};
  if (!date.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const auto local = std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                     std::chrono::seconds(second) - std::chrono::minutes(offset_min);
  return std::chrono::duration_cast<std::chrono::milliseconds>(local.time_since_epoch()).count();
}

void append_hex(std::string& out, unsigned value, int digits) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += "0123456789abcdef"[(value >> shift) & 0xF];
}

void add_reading(CanonicalRecord& record, std::string_view name, double value, std::string_view unit = {}) {
  SensorReading& reading = record.readings.emplace_back();
  reading.name = name;
  reading.value = value;
  reading.unit = unit;
}

}  // namespace

std::expected<void, CodecError> Gt06Codec::decode(std::string_view body, const DecodeContext& context,
                                                  DecodedBatch& out) {
  if (context.content_type != kContentType) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the gt06 codec reads {}, not '{}'", kContentType, context.content_type),
                                      std::nullopt});
  }
  if (body.empty()) return std::unexpected(CodecError{CodecErrc::empty_body, "the body is empty", std::nullopt});

  const auto protocol = static_cast<std::uint8_t>(body[0]);
  const bool alarm = protocol == kAlarm || protocol == kAlarmN;
  if (protocol != kLocation && protocol != kLocationN && !alarm) {
    return malformed(fmt::format("protocol number 0x{:02x} carries no location (0x12, 0x22, 0x16, 0x26)", protocol), 0);
  }
  // The layout's fixed part must be there; bytes past it (newer firmware appends mileage and
  // more) are ignored, as the GT06 documents allow.
  std::size_t needed = 1 + kGpsBytes + (alarm ? 1 : kCellBytes) + (protocol == kLocationN ? kLocationNExtraBytes : 0);
  const auto short_by = [&](std::size_t need) {
    return malformed(fmt::format("0x{:02x} packet of {} bytes, its layout needs {} with the serial number", protocol,
                                 body.size(), need + kSerialBytes),
                     body.size());
  };
  if (body.size() < needed + kSerialBytes) return short_by(needed);
  // The alarm packets' LBS block starts with its own length (itself included).
  const std::size_t cell_block = alarm ? static_cast<unsigned char>(body[1 + kGpsBytes]) : kCellBytes;
  if (alarm) {
    if (cell_block != 0 && cell_block != 1 + kCellBytes) {
      return malformed(fmt::format("LBS length {}, expected 9 (or 0: no cell)", cell_block), 1 + kGpsBytes);
    }
    needed = 1 + kGpsBytes + (cell_block == 0 ? 1 : cell_block) + kStatusBytes;
    if (body.size() < needed + kSerialBytes) return short_by(needed);
  }

  Reader in(body);
  in.skip(1);
  const auto time = packet_time_ms(in, options_.timezone_offset_min);
  const unsigned satellites = in.read(1) & 0x0F;
  const std::uint32_t raw_lat = in.read(4), raw_lon = in.read(4);
  const unsigned speed_kmh = in.read(1);
  const unsigned course_status = in.read(2);
  const unsigned serial = static_cast<unsigned>(
      static_cast<unsigned char>(body[body.size() - 2]) << 8 | static_cast<unsigned char>(body[body.size() - 1]));
  if (!time) {
    out.reject(0, "date_time", "is not a valid YY MM DD hh mm ss date-time");
    return {};
  }

  // Both records of the packet share its identity, so a resent packet is de-duplicated whole.
  // Built by hand: fmt here was a third of the codec's cost per packet.
  const auto msg_id = [&](CanonicalRecord& record, std::string_view suffix) {
    std::string& id = record.msg_id;
    id.assign(context.device_id);
    id += "-gt06-";
    append_hex(id, protocol, 2);
    append_hex(id, serial, 4);
    id += '-';
    char seconds[24];
    id.append(seconds, std::to_chars(seconds, seconds + sizeof seconds, *time / 1000).ptr);
    id += suffix;
  };

  if ((course_status & kPositioned) == 0) {
    // A location without a fix repeats the last fix (or zeros) with a fresh time: refused, so
    // that consumers never read it as where the vehicle is. The status record below still
    // carries the cell and any alarm.
    out.reject(0, "course_status.positioned", "GPS not positioned (bit 12 of course/status is 0): no fix to report");
  } else {
    CanonicalRecord& record = out.append(0);
    record.device_id = context.device_id;
    record.type = MessageType::location;
    record.event_time_ms = *time;
    msg_id(record, "");
    const double lat = static_cast<double>(raw_lat) / kMinutesScale;
    const double lon = static_cast<double>(raw_lon) / kMinutesScale;
    record.location.lat = (course_status & kNorth) ? lat : -lat;
    record.location.lon = (course_status & kWest) ? -lon : lon;
    record.location.speed = speed_kmh * kKmhToMps;
    record.location.heading = static_cast<double>(course_status & kCourseMask);
  }

  CanonicalRecord& status = out.append(1);
  status.device_id = context.device_id;
  status.type = MessageType::sensor;
  status.event_time_ms = *time;
  msg_id(status, "-status");
  add_reading(status, "gps.satellites", satellites, "count");
  if (alarm) in.skip(1);  // the LBS length checked above
  if (cell_block != 0) {
    add_reading(status, "gsm.mcc", in.read(2));
    add_reading(status, "gsm.mnc", in.read(1));
    add_reading(status, "gsm.lac", in.read(2));
    add_reading(status, "gsm.cell_id", in.read(3));
  }
  if (protocol == kLocationN) {
    add_reading(status, "acc", in.read(1));
    add_reading(status, "data_upload_mode", in.read(1));
    add_reading(status, "gps_reupload", in.read(1));
  } else if (alarm) {
    const unsigned terminal = in.read(1);
    add_reading(status, "terminal_info", terminal);
    add_reading(status, "acc", (terminal >> 1) & 1);
    add_reading(status, "charging", (terminal >> 2) & 1);
    add_reading(status, "voltage_level", in.read(1));
    add_reading(status, "gsm_signal", in.read(1));
    add_reading(status, "alarm", in.read(1));
    add_reading(status, "language", in.read(1));
  }
  if (status.readings.size() > limits_.max_readings) {
    out.drop_last();
    out.reject(1, "readings", fmt::format("{} readings, decode.max_readings is {}", status.readings.size(), limits_.max_readings));
  }
  return {};
}

std::shared_ptr<const CodecPlan> compile_gt06(OptionReader& options, const DecodeLimits& limits) {
  struct Plan final : CodecPlan {
    Plan(const DecodeLimits& decode_limits, Gt06Options codec_options) : limits(decode_limits), options(codec_options) {}
    std::unique_ptr<Codec> instantiate() const override { return std::make_unique<Gt06Codec>(limits, options); }
    DecodeLimits limits;
    Gt06Options options;
  };
  Gt06Options read;
  // UTC−12:00 to UTC+14:00, the offsets in use.
  options.integer("timezone_offset_min", read.timezone_offset_min, -720, 840);
  options.finish();
  return std::make_shared<Plan>(limits, read);
}

}  // namespace telegate::codecs
