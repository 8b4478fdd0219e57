// Reading YAML (or JSON) option trees with errors that name the dotted key.
//
// The gateway's config file, device-type definitions uploaded through the admin API and each
// codec's own options are all read through OptionReader, so every one of them refuses an
// unknown key or a bad value the same way: OptionError("device_types[2].codec_options.lat:
// must be a JSON pointer such as /lat"). Control plane only (start-up and admin API): it
// throws, and never runs per record.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::codecs {

class OptionError : public std::runtime_error {
 public:
  OptionError(const std::string& key, const std::string& problem);
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

// Walks one YAML mapping, remembering which keys were read so that finish() can name the
// first unknown one. Lives only while options are being read, on the thread reading them.
class OptionReader {
 public:
  OptionReader(YAML::Node node, std::string path);

  std::string key_path(std::string_view key) const;
  const std::string& path() const noexcept { return path_; }
  const YAML::Node& node() const noexcept { return node_; }
  bool has(std::string_view key) const;

  // Marks `key` as read and returns its node (undefined when absent). Const access only:
  // yaml-cpp's non-const operator[] inserts missing keys.
  YAML::Node take(std::string_view key);
  OptionReader child(std::string_view key) { return OptionReader(take(key), key_path(key)); }

  void string(std::string_view key, std::string& out);
  void boolean(std::string_view key, bool& out);
  void number(std::string_view key, double& out, double min, double max);
  void optional_number(std::string_view key, std::optional<double>& out, double min, double max);

  template <class Integer>
  void integer(std::string_view key, Integer& out, Integer min, Integer max) {
    const YAML::Node value = take(key);
    if (!value) return;
    out = static_cast<Integer>(parse_integer(key_path(key), value, static_cast<long long>(min),
                                             static_cast<unsigned long long>(max)));
  }

  template <class Duration>
  void duration(std::string_view key, Duration& out, std::int64_t min, std::int64_t max) {
    std::int64_t count = out.count();
    integer(key, count, min, max);
    out = Duration(count);
  }

  template <class Enum, class Parse>
  void enumeration(std::string_view key, Enum& out, Parse parse, std::string_view allowed) {
    const YAML::Node value = take(key);
    if (!value) return;
    const std::string& text = scalar(key, value);
    const std::optional<Enum> parsed = parse(text);
    if (!parsed) throw OptionError(key_path(key), "must be one of " + std::string(allowed) + ", got '" + text + "'");
    out = *parsed;
  }

  // Items of a sequence, each a reader named "<key>[i]".
  std::vector<OptionReader> list(std::string_view key);
  // Every key of a free-form string map (e.g. librdkafka pass-through settings).
  std::map<std::string, std::string> string_map(std::string_view key);
  // Sub-readers of a mapping whose keys are names chosen by the user (e.g. mapping fields).
  std::vector<std::pair<std::string, OptionReader>> entries(std::string_view key);

  // Throws on the first key nobody read.
  void finish() const;

 private:
  const std::string& scalar(std::string_view key, const YAML::Node& value) const;
  static long long parse_integer(const std::string& path, const YAML::Node& value, long long min,
                                 unsigned long long max);

  YAML::Node node_;
  std::string path_;
  std::set<std::string, std::less<>> read_;
};

}  // namespace telegate::codecs
