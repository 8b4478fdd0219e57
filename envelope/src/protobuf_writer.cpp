#include "protobuf_writer.hpp"
#include "small_copy.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>

namespace telegate::envelope {

namespace {

using Wire = google::protobuf::internal::WireFormatLite;
using Coded = google::protobuf::io::CodedOutputStream;

// emit_envelope() below lists the fields once; run with a Sizer it counts their bytes, with a
// Writer it writes them. Both follow proto3's rules as protoc's generated code does: scalars
// and strings without presence are left out when zero or empty (doubles by their bits, so -0.0
// is written), `optional` ones when unset, sub-messages always when set.
struct Sizer {
  std::size_t size = 0;

  void uint32(int field, std::uint32_t value) {
    if (value != 0) size += Wire::TagSize(field, Wire::TYPE_UINT32) + Wire::UInt32Size(value);
  }
  void enumeration(int field, int value) {
    if (value != 0) size += Wire::TagSize(field, Wire::TYPE_ENUM) + Wire::EnumSize(value);
  }
  void int64(int field, std::int64_t value) {
    if (value != 0) size += Wire::TagSize(field, Wire::TYPE_INT64) + Wire::Int64Size(value);
  }
  void boolean(int field, bool value) {
    if (value) size += Wire::TagSize(field, Wire::TYPE_BOOL) + Wire::kBoolSize;
  }
  void dbl(int field, double value) {
    if (std::bit_cast<std::uint64_t>(value) != 0) optional_dbl(field, value);
  }
  void optional_dbl(int field, const std::optional<double>& value) {
    if (value) size += Wire::TagSize(field, Wire::TYPE_DOUBLE) + Wire::kDoubleSize;
  }
  void string(int field, std::string_view value) {
    if (!value.empty()) size += Wire::TagSize(field, Wire::TYPE_STRING) + Wire::LengthDelimitedSize(value.size());
  }
  template <class Body>
  void message(int field, Body&& body) {
    Sizer inner;
    body(inner);
    size += Wire::TagSize(field, Wire::TYPE_MESSAGE) + Wire::LengthDelimitedSize(inner.size);
  }
};

struct Writer {
  std::uint8_t* at;

  void uint32(int field, std::uint32_t value) {
    if (value != 0) at = Wire::WriteUInt32ToArray(field, value, at);
  }
  void enumeration(int field, int value) {
    if (value != 0) at = Wire::WriteEnumToArray(field, value, at);
  }
  void int64(int field, std::int64_t value) {
    if (value != 0) at = Wire::WriteInt64ToArray(field, value, at);
  }
  void boolean(int field, bool value) {
    if (value) at = Wire::WriteBoolToArray(field, value, at);
  }
  void dbl(int field, double value) {
    if (std::bit_cast<std::uint64_t>(value) != 0) at = Wire::WriteDoubleToArray(field, value, at);
  }
  void optional_dbl(int field, const std::optional<double>& value) {
    if (value) at = Wire::WriteDoubleToArray(field, *value, at);
  }
  void string(int field, std::string_view value) {
    if (value.empty()) return;
    at = reinterpret_cast<std::uint8_t*>(copy_text(reinterpret_cast<char*>(length_prefix(field, value.size())), value));
  }
  template <class Body>
  void message(int field, Body&& body) {
    Sizer inner;
    body(inner);
    at = length_prefix(field, inner.size);
    body(*this);
  }

 private:
  std::uint8_t* length_prefix(int field, std::size_t size) {
    at = Wire::WriteTagToArray(field, Wire::WIRETYPE_LENGTH_DELIMITED, at);
    return Coded::WriteVarint32ToArray(static_cast<std::uint32_t>(size), at);
  }
};

// The field numbers are those of kEnvelopeFieldNumbers and its siblings, in the order protoc
// writes them (ascending).
template <class Out>
void emit_envelope(Out& out, const codecs::CanonicalRecord& record, const EnvelopeContext& context,
                   const EnvelopeIdentity& identity) {
  const bool location = record.type == codecs::MessageType::location;
  out.uint32(1, kSchemaVersion);
  out.string(2, context.tenant);
  out.string(3, record.device_id);
  out.string(4, context.device_type);
  out.enumeration(5, location ? 1 : 2);  // MESSAGE_TYPE_LOCATION, MESSAGE_TYPE_SENSOR
  out.int64(6, record.event_time_ms);
  out.int64(7, context.ingest_time_ms);
  out.string(8, context.gateway_id);
  out.string(9, identity.msg_id);
  out.boolean(10, identity.msg_id_generated);
  out.enumeration(11, static_cast<int>(context.protocol));  // same numbers as v1::SourceProtocol
  out.string(12, context.content_type);
  if (location) {
    out.message(20, [&](auto& fields) {
      const codecs::Location& from = record.location;
      fields.dbl(1, from.lat);
      fields.dbl(2, from.lon);
      fields.optional_dbl(3, from.alt);
      fields.optional_dbl(4, from.speed);
      fields.optional_dbl(5, from.heading);
      fields.optional_dbl(6, from.accuracy);
      fields.optional_dbl(7, from.battery);
    });
    return;
  }
  out.message(21, [&](auto& sensor) {
    for (const codecs::SensorReading& from : record.readings) {
      sensor.message(1, [&](auto& fields) {
        fields.string(1, from.name);
        fields.dbl(2, from.value);
        fields.string(3, from.unit);
      });
    }
    for (const codecs::Attribute& from : record.attributes) {
      sensor.message(2, [&](auto& fields) {
        fields.string(1, from.name);
        fields.string(2, from.value);
      });
    }
  });
}

}  // namespace

void check_utf8(std::string_view text, const char* field_name) {
  std::uint64_t high_bits = 0;  // any byte ≥ 0x80 means "not plain ASCII": then the full check
  std::size_t at = 0;
  for (; at + 8 <= text.size(); at += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + at, 8);
    high_bits |= word;
  }
  for (; at < text.size(); ++at) high_bits |= static_cast<unsigned char>(text[at]);
  if ((high_bits & 0x8080808080808080ull) == 0) return;
  Wire::VerifyUtf8String(text.data(), static_cast<int>(text.size()), Wire::SERIALIZE, field_name);
}

void write_protobuf(const codecs::CanonicalRecord& record, const EnvelopeContext& context, const EnvelopeIdentity& identity,
                    std::string& out) {
  for (const codecs::SensorReading& reading : record.readings) check_utf8(reading.unit, "telegate.v1.SensorReading.unit");
  for (const codecs::Attribute& attribute : record.attributes) {
    check_utf8(attribute.name, "telegate.v1.Attribute.name");
    check_utf8(attribute.value, "telegate.v1.Attribute.value");
  }
  Sizer sizer;
  emit_envelope(sizer, record, context, identity);
  // Returns sizer.size, not the lambda's second argument: libstdc++ 12 passes the grown
  // capacity there when it reallocates.
  out.resize_and_overwrite(sizer.size, [&](char* data, std::size_t) {
    Writer writer{reinterpret_cast<std::uint8_t*>(data)};
    emit_envelope(writer, record, context, identity);
    return sizer.size;
  });
}

}  // namespace telegate::envelope
