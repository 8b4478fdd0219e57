// UTF-8 checks and topic names/filters (MQTT 5.0 sections 1.5.4 and 4.7; 3.1.1 sections 1.5.3
// and 4.7, which say the same for everything here).
#include <algorithm>
#include <string>

#include "mqtt/mqtt_packet.hpp"

namespace telegate::gateway::mqtt {

namespace {

constexpr std::size_t kMaxStringBytes = 65'535;

PacketError topic_error(ReasonCode reason, std::string message, std::size_t offset) {
  return PacketError{MqttErrc::invalid_topic, reason, std::move(message), offset};
}

}  // namespace

namespace detail {

// RFC 3629 section 4's grammar, byte by byte: the tables there exclude overlong forms (C0, C1,
// E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..).
std::optional<std::size_t> find_invalid_utf8(std::string_view text, bool allow_nul) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) {
      if (b0 == 0 && !allow_nul) return i;
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80;  // the allowed range of the second byte
    unsigned char high = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      if (b0 == 0xE0) low = 0xA0;   // overlong
      if (b0 == 0xED) high = 0x9F;  // surrogates U+D800..U+DFFF
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      if (b0 == 0xF0) low = 0x90;   // overlong
      if (b0 == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return i;  // continuation byte without a lead, C0/C1 overlong leads, F5..FF
    }
    if (n - i < length) return i;
    if (byte(i + 1) < low || byte(i + 1) > high) return i;
    for (std::size_t k = 2; k < length; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return i;
    }
    i += length;
  }
  return std::nullopt;
}

}  // namespace detail

std::optional<std::size_t> find_invalid_utf8(std::string_view text) noexcept {
  return detail::find_invalid_utf8(text, false);
}

std::expected<void, PacketError> validate_topic_name(std::string_view topic) {
  if (topic.empty()) {
    return std::unexpected(topic_error(ReasonCode::topic_name_invalid, "topic name is empty", 0));
  }
  if (topic.size() > kMaxStringBytes) {
    return std::unexpected(topic_error(ReasonCode::topic_name_invalid, "topic name is longer than 65535 bytes", 0));
  }
  if (const auto bad = find_invalid_utf8(topic)) {
    return std::unexpected(topic_error(ReasonCode::topic_name_invalid,
        "topic name is not well-formed UTF-8 (RFC 3629) or contains U+0000 at byte " + std::to_string(*bad), *bad));
  }
  if (const auto wildcard = topic.find_first_of("+#"); wildcard != std::string_view::npos) {
    return std::unexpected(topic_error(ReasonCode::topic_name_invalid,
        std::string("topic name contains a wildcard '") + topic[wildcard] + "' at byte " + std::to_string(wildcard),
        wildcard));
  }
  return {};
}

std::optional<SharedFilter> parse_shared_filter(std::string_view filter) noexcept {
  constexpr std::string_view kPrefix = "$share/";
  if (!filter.starts_with(kPrefix)) return std::nullopt;
  const std::string_view rest = filter.substr(kPrefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return SharedFilter{rest, {}};
  return SharedFilter{rest.substr(0, slash), rest.substr(slash + 1)};
}

std::expected<void, PacketError> validate_topic_filter(std::string_view filter) {
  if (filter.empty()) {
    return std::unexpected(topic_error(ReasonCode::topic_filter_invalid, "topic filter is empty", 0));
  }
  if (filter.size() > kMaxStringBytes) {
    return std::unexpected(topic_error(ReasonCode::topic_filter_invalid, "topic filter is longer than 65535 bytes", 0));
  }
  if (const auto bad = find_invalid_utf8(filter)) {
    return std::unexpected(topic_error(ReasonCode::topic_filter_invalid,
        "topic filter is not well-formed UTF-8 (RFC 3629) or contains U+0000 at byte " + std::to_string(*bad), *bad));
  }
  std::size_t base = 0;
  std::string_view body = filter;
  if (const auto shared = parse_shared_filter(filter)) {
    // MQTT 5 section 4.8.2: the ShareName is at least one character and has no '/', '+', '#'.
    if (shared->share_name.empty()) {
      return std::unexpected(topic_error(ReasonCode::topic_filter_invalid, "shared subscription has an empty ShareName", 7));
    }
    if (const auto w = shared->share_name.find_first_of("+#"); w != std::string_view::npos) {
      return std::unexpected(topic_error(ReasonCode::topic_filter_invalid,
          std::string("shared subscription ShareName contains '") + shared->share_name[w] + "'", 7 + w));
    }
    if (shared->filter.empty()) {
      return std::unexpected(topic_error(ReasonCode::topic_filter_invalid,
          "shared subscription has no topic filter after the ShareName", filter.size()));
    }
    base = filter.size() - shared->filter.size();
    body = shared->filter;
  }
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '+' && c != '#') continue;
    const bool level_start = i == 0 || body[i - 1] == '/';
    const bool level_end = i + 1 == body.size() || body[i + 1] == '/';
    if (!level_start || !level_end) {
      return std::unexpected(topic_error(ReasonCode::topic_filter_invalid,
          std::string("wildcard '") + c + "' at byte " + std::to_string(base + i) + " does not occupy a whole level",
          base + i));
    }
    if (c == '#' && i + 1 != body.size()) {
      return std::unexpected(topic_error(ReasonCode::topic_filter_invalid,
          "wildcard '#' at byte " + std::to_string(base + i) + " is not the last level", base + i));
    }
  }
  return {};
}

std::vector<std::string_view> split_topic(std::string_view topic) {
  std::vector<std::string_view> levels;
  std::size_t start = 0;
  while (true) {
    const auto slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(topic.substr(start));
      return levels;
    }
    levels.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
}

bool topic_matches(std::string_view filter, std::string_view topic, std::vector<std::string_view>* captures) {
  if (captures != nullptr) captures->clear();
  // MQTT-4.7.2-1: "$SYS/..." and other '$' topics are not matched by a leading wildcard.
  if (!topic.empty() && topic.front() == '$' && !filter.empty() && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  // Walk both level by level without allocating: this runs per PUBLISH per subscription.
  std::size_t f = 0;  // start of the current filter level
  std::size_t t = 0;  // start of the current topic level
  bool topic_done = false;  // the topic's last level has been consumed
  while (true) {
    const auto f_end = std::min(filter.find('/', f), filter.size());
    const std::string_view f_level = filter.substr(f, f_end - f);
    if (f_level == "#") {
      // '#' also matches the parent level: "a/#" matches "a".
      if (captures != nullptr) captures->push_back(topic_done ? std::string_view{} : topic.substr(t));
      return true;
    }
    if (topic_done) return false;
    const auto t_end = std::min(topic.find('/', t), topic.size());
    const std::string_view t_level = topic.substr(t, t_end - t);
    if (f_level == "+") {
      if (captures != nullptr) captures->push_back(t_level);
    } else if (f_level != t_level) {
      return false;
    }
    const bool filter_last = f_end == filter.size();
    const bool topic_last = t_end == topic.size();
    if (filter_last) return topic_last;
    f = f_end + 1;
    if (topic_last) {
      topic_done = true;
    } else {
      t = t_end + 1;
    }
  }
}

}  // namespace telegate::gateway::mqtt
