#include "telegate/codecs/options.hpp"

#include <charconv>
#include <sstream>

namespace telegate::codecs {

namespace {

std::string range_message(const std::string& text, double min, double max) {
  std::ostringstream message;
  message << "must be a number between " << std::fixed;
  message.precision(min == static_cast<long long>(min) && max == static_cast<long long>(max) ? 0 : 6);
  message << min << " and " << max << ", got '" << text << "'";
  return message.str();
}

}  // namespace

OptionError::OptionError(const std::string& key, const std::string& problem)
    : std::runtime_error(key + ": " + problem), key_(key) {}

OptionReader::OptionReader(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) throw OptionError(path_, "must be a mapping");
}

std::string OptionReader::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool OptionReader::has(std::string_view key) const {
  const YAML::Node& node = node_;
  return node.IsDefined() && node.IsMap() && node[std::string(key)].IsDefined();
}

YAML::Node OptionReader::take(std::string_view key) {
  read_.emplace(key);
  const YAML::Node& node = node_;
  if (!node.IsDefined() || !node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return node[std::string(key)];
}

void OptionReader::string(std::string_view key, std::string& out) {
  const YAML::Node value = take(key);
  if (!value) return;
  if (!value.IsScalar()) throw OptionError(key_path(key), "must be a string");
  out = value.Scalar();
}

void OptionReader::boolean(std::string_view key, bool& out) {
  const YAML::Node value = take(key);
  if (!value) return;
  const std::string& text = scalar(key, value);
  if (text == "true") {
    out = true;
  } else if (text == "false") {
    out = false;
  } else {
    throw OptionError(key_path(key), "must be true or false, got '" + text + "'");
  }
}

void OptionReader::number(std::string_view key, double& out, double min, double max) {
  std::optional<double> value;
  optional_number(key, value, min, max);
  if (value) out = *value;
}

void OptionReader::optional_number(std::string_view key, std::optional<double>& out, double min, double max) {
  const YAML::Node value = take(key);
  if (!value) return;
  const std::string& text = scalar(key, value);
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (ec != std::errc() || end != text.data() + text.size() || !(parsed >= min && parsed <= max)) {
    throw OptionError(key_path(key), range_message(text, min, max));
  }
  out = parsed;
}

std::vector<OptionReader> OptionReader::list(std::string_view key) {
  const YAML::Node value = take(key);
  std::vector<OptionReader> items;
  if (!value || value.IsNull()) return items;
  if (!value.IsSequence()) throw OptionError(key_path(key), "must be a list");
  for (std::size_t i = 0; i < value.size(); ++i) {
    items.emplace_back(value[i], key_path(key) + "[" + std::to_string(i) + "]");
  }
  return items;
}

std::map<std::string, std::string> OptionReader::string_map(std::string_view key) {
  const YAML::Node value = take(key);
  std::map<std::string, std::string> out;
  if (!value || value.IsNull()) return out;
  if (!value.IsMap()) throw OptionError(key_path(key), "must be a mapping of strings");
  for (const auto& item : value) {
    const std::string name = item.first.Scalar();
    if (!item.second.IsScalar()) throw OptionError(key_path(key) + "." + name, "must be a string");
    out[name] = item.second.Scalar();
  }
  return out;
}

std::vector<std::pair<std::string, OptionReader>> OptionReader::entries(std::string_view key) {
  const YAML::Node value = take(key);
  std::vector<std::pair<std::string, OptionReader>> out;
  if (!value || value.IsNull()) return out;
  if (!value.IsMap()) throw OptionError(key_path(key), "must be a mapping");
  for (const auto& item : value) {
    const std::string name = item.first.Scalar();
    out.emplace_back(name, OptionReader(item.second, key_path(key) + "." + name));
  }
  return out;
}

void OptionReader::finish() const {
  if (!node_.IsDefined() || !node_.IsMap()) return;
  for (const auto& item : node_) {
    const std::string name = item.first.Scalar();
    if (!read_.contains(name)) throw OptionError(key_path(name), "unknown key");
  }
}

const std::string& OptionReader::scalar(std::string_view key, const YAML::Node& value) const {
  if (!value.IsScalar()) throw OptionError(key_path(key), "must be a scalar value");
  return value.Scalar();
}

long long OptionReader::parse_integer(const std::string& path, const YAML::Node& value, long long min,
                                      unsigned long long max) {
  if (!value.IsScalar()) throw OptionError(path, "must be a whole number");
  const std::string& text = value.Scalar();
  long long parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (ec != std::errc() || end != text.data() + text.size() || parsed < min ||
      (parsed >= 0 && static_cast<unsigned long long>(parsed) > max)) {
    throw OptionError(path, range_message(text, static_cast<double>(min), static_cast<double>(max)));
  }
  return parsed;
}

}  // namespace telegate::codecs
