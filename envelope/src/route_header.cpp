// The `tg-route` header: the routing fields in application/x-www-form-urlencoded form, one
// header per record (docs/envelope.md explains why one and why this encoding).
#include <fmt/format.h>

#include <array>
#include <charconv>

#include "route_header.hpp"
#include "small_copy.hpp"
#include "telegate/envelope/envelope.hpp"

namespace telegate::envelope {

namespace {

// Form-encoding's characters that pass as they are (plus ':' for ids such as "urn:dev:…"): a
// table rather than a chain of comparisons, since every record's msg_id goes through here.
constexpr auto kUnreserved = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    table[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
               c == '_' || c == '~' || c == ':';
  }
  return table;
}();

// Writes `text` percent-encoded at `at` (room for 3 bytes per byte) and returns the end.
char* write_encoded(char* at, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (kUnreserved[byte]) {
      *at++ = c;
      continue;
    }
    at[0] = '%';
    at[1] = kHex[byte >> 4];
    at[2] = kHex[byte & 0x0f];
    at += 3;
  }
  return at;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::expected<std::string, EnvelopeError> decode_component(std::string_view text, std::string_view name) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i] == '+' ? ' ' : text[i];
      continue;
    }
    const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
    const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return std::unexpected(
          EnvelopeError{EnvelopeErrc::bad_header, fmt::format("bad percent-escape in field '{}' of tg-route", name)});
    }
    out += static_cast<char>(high << 4 | low);
    i += 2;
  }
  return out;
}

}  // namespace

// Both halves write through a pointer into room sized for the worst case (every byte of the
// texts escaped) and cut the string to what was written: one capacity check per half instead of
// one per piece, which showed as memmove calls in the per-record profile.
void append_route_prefix(std::string& out, std::uint32_t version, std::string_view tenant, std::string_view device_type) {
  const std::size_t start = out.size();
  const std::size_t room = 2 + 10 + 3 + 3 * tenant.size() + 4 + 3 * device_type.size() + 4;
  out.resize_and_overwrite(start + room, [&](char* data, std::size_t) {
    char* at = copy_text(data + start, "v=");
    at = std::to_chars(at, at + 10, version).ptr;
    at = write_encoded(copy_text(at, "&t="), tenant);
    at = write_encoded(copy_text(at, "&dt="), device_type);
    return static_cast<std::size_t>(copy_text(at, "&mt=") - data);
  });
}

void append_route_rest(std::string& out, codecs::MessageType type, std::int64_t event_time_ms, std::string_view msg_id,
                       Format format) {
  const std::string_view type_name = codecs::to_string(type);
  const std::string_view format_part = format == Format::protobuf ? "&f=pb" : format == Format::json ? "&f=json" : "&f=ce";
  const std::size_t start = out.size();
  const std::size_t room = type_name.size() + 4 + 20 + 4 + 3 * msg_id.size() + format_part.size();
  out.resize_and_overwrite(start + room, [&](char* data, std::size_t) {
    char* at = copy_text(copy_text(data + start, type_name), "&et=");
    at = std::to_chars(at, at + 20, event_time_ms).ptr;
    at = write_encoded(copy_text(at, "&id="), msg_id);
    return static_cast<std::size_t>(copy_text(at, format_part) - data);
  });
}

void encode_route_header(const RouteFields& fields, std::string& out) {
  out.clear();
  append_route_prefix(out, fields.version, fields.tenant, fields.device_type);
  append_route_rest(out, fields.message_type, fields.event_time_ms, fields.msg_id, fields.format);
}

std::expected<RouteFields, EnvelopeError> decode_route_header(std::string_view header) {
  RouteFields fields;
  bool has_version = false, has_tenant = false, has_type = false, has_time = false, has_id = false;
  auto bad = [](std::string message) { return std::unexpected(EnvelopeError{EnvelopeErrc::bad_header, std::move(message)}); };
  while (!header.empty()) {
    const std::size_t amp = header.find('&');
    const std::string_view pair = header.substr(0, amp);
    header = amp == std::string_view::npos ? std::string_view{} : header.substr(amp + 1);
    const std::size_t equals = pair.find('=');
    if (equals == std::string_view::npos) return bad(fmt::format("tg-route field '{}' has no '='", pair.substr(0, 32)));
    const std::string_view name = pair.substr(0, equals);
    auto value = decode_component(pair.substr(equals + 1), name);
    if (!value) return std::unexpected(value.error());
    auto parse_int = [&](auto& out) {
      const auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), out);
      return ec == std::errc() && ptr == value->data() + value->size();
    };
    if (name == "v") {
      if (!parse_int(fields.version)) return bad("tg-route field 'v' is not a number");
      has_version = true;
    } else if (name == "t") {
      fields.tenant = std::move(*value);
      has_tenant = true;
    } else if (name == "dt") {
      fields.device_type = std::move(*value);
    } else if (name == "mt") {
      const auto type = codecs::parse_message_type(*value);
      if (!type) return bad(fmt::format("tg-route field 'mt' has unknown message type '{}'", value->substr(0, 32)));
      fields.message_type = *type;
      has_type = true;
    } else if (name == "et") {
      if (!parse_int(fields.event_time_ms)) return bad("tg-route field 'et' is not a number");
      has_time = true;
    } else if (name == "id") {
      fields.msg_id = std::move(*value);
      has_id = true;
    } else if (name == "f") {
      if (*value == "pb") {
        fields.format = Format::protobuf;
      } else if (*value == "json") {
        fields.format = Format::json;
      } else if (*value == "ce") {
        fields.format = Format::cloudevents;
      } else {
        return bad(fmt::format("tg-route field 'f' has unknown format '{}'", value->substr(0, 32)));
      }
    }
    // Unknown fields are ignored: later versions may add some.
  }
  if (!has_version || !has_tenant || !has_type || !has_time || !has_id) {
    return bad("tg-route lacks one of the required fields v, t, mt, et, id");
  }
  return fields;
}

}  // namespace telegate::envelope
