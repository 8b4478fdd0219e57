#include "mqtt_bridge/topic_pattern.hpp"

#include <algorithm>

#include "mqtt/mqtt_packet.hpp"

namespace telegate::gateway::mqtt_bridge {

namespace {

// Splits at '/', keeping empty levels ("a//b" has three), as MQTT does.
std::vector<std::string_view> levels_of(std::string_view text) {
  std::vector<std::string_view> levels;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = text.find('/', start);
    levels.push_back(text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) return levels;
    start = slash + 1;
  }
}

bool is_placeholder_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

}  // namespace

std::expected<TopicPattern, std::string> TopicPattern::compile(std::string_view text) {
  if (text.empty()) return std::unexpected("must not be empty");
  if (text.front() == '$') return std::unexpected("must not start with '$' (broker-internal topics are never bridged)");
  TopicPattern pattern;
  pattern.text_ = std::string(text);
  const std::vector<std::string_view> levels = levels_of(text);
  bool has_device_id = false;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::string_view level = levels[i];
    const std::string where = "level " + std::to_string(i + 1) + " '" + std::string(level) + "'";
    if (level == "#") {
      if (i + 1 != levels.size()) return std::unexpected(where + ": '#' may only be the last level");
      pattern.parts_.push_back({Level::any_rest, {}});
    } else if (level == "+") {
      pattern.parts_.push_back({Level::any_one, {}});
    } else if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      const std::string_view name = level.substr(1, level.size() - 2);
      if (!is_placeholder_name(name)) return std::unexpected(where + ": placeholder names are [a-z_]+");
      if (name == "tenant" || name == "device_id") {
        const bool tenant = name == "tenant";
        if (tenant ? pattern.captures_tenant_ : has_device_id) {
          return std::unexpected(where + ": {" + std::string(name) + "} appears twice");
        }
        (tenant ? pattern.captures_tenant_ : has_device_id) = true;
        pattern.parts_.push_back({tenant ? Level::tenant : Level::device_id, {}});
      } else {
        pattern.parts_.push_back({Level::any_one, {}});
      }
    } else if (level.find_first_of("{}+#") != std::string_view::npos) {
      return std::unexpected(where + ": a level is either literal text or a whole {placeholder}, '+' or '#'");
    } else {
      pattern.parts_.push_back({Level::literal, std::string(level)});
    }
  }
  if (!has_device_id) return std::unexpected("must contain {device_id}");
  return pattern;
}

std::optional<TopicPattern::Match> TopicPattern::match(std::string_view topic) const noexcept {
  Match found;
  std::size_t start = 0;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    const Part& part = parts_[i];
    if (part.level == Level::any_rest) return found;  // '#' also matches the parent level itself
    if (start > topic.size()) return std::nullopt;  // the topic has fewer levels
    const std::size_t slash = topic.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? topic.size() : slash;
    const std::string_view level = topic.substr(start, end - start);
    switch (part.level) {
      case Level::literal:
        if (level != part.literal) return std::nullopt;
        break;
      case Level::tenant:
      case Level::device_id:
      case Level::any_one:
        if (level.empty()) return std::nullopt;
        if (part.level == Level::tenant) found.tenant = level;
        if (part.level == Level::device_id) found.device_id = level;
        break;
      case Level::any_rest:
        break;
    }
    start = end + 1;  // past the '/' (or past the end: no more levels)
  }
  if (start <= topic.size()) return std::nullopt;  // the topic has more levels
  return found;
}

std::optional<std::string> topic_filter_problem(std::string_view filter) {
  if (filter.starts_with("$share/")) return "give the group in shared_group, not as $share/ in the filter";
  if (auto valid = mqtt::validate_topic_filter(filter); !valid) return valid.error().message;
  return std::nullopt;
}

std::string subscription_topic(std::string_view group, std::string_view filter) {
  if (group.empty()) return std::string(filter);
  return "$share/" + std::string(group) + "/" + std::string(filter);
}

}  // namespace telegate::gateway::mqtt_bridge
