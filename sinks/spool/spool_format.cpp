#include "spool/spool_format.hpp"

#include <fmt/format.h>

#include <mutex>
#include <optional>
#include <unordered_set>

#include "local_log/log_format.hpp"

namespace telegate::sinks::spool {

namespace {

using local_log::get_field;
using local_log::get_varint;
using local_log::put_field;
using local_log::put_varint;

// SealedRecord header names are string_views of static strings: names read back from the spool
// are interned here for the life of the process. The envelope writes a handful (the CloudEvents
// attributes); a spool naming more than kMaxHeaderNames distinct ones is not ours.
constexpr std::size_t kMaxHeaderNames = 64;

std::optional<std::string_view> intern(const std::string& name) {
  static std::mutex mutex;
  static std::unordered_set<std::string> names;
  std::lock_guard lock(mutex);
  if (const auto found = names.find(name); found != names.end()) return *found;
  if (names.size() >= kMaxHeaderNames) return std::nullopt;
  return *names.insert(name).first;
}

// A count can claim at most one element per remaining byte: anything larger is corrupt, and
// checking it first keeps a hostile count from reserving gigabytes.
bool get_count(std::string_view& bytes, std::uint64_t& count) { return get_varint(bytes, count) && count <= bytes.size(); }

}  // namespace

void append_batch_frame(const std::vector<envelope::SealedRecord>& records, const std::vector<ControlRecord>& control,
                        std::int64_t spooled_at_ms, std::string& out) {
  const std::size_t start = local_log::begin_frame(out);
  out += static_cast<char>(kSpoolFormatVersion);
  put_varint(out, static_cast<std::uint64_t>(spooled_at_ms));
  put_varint(out, records.size());
  for (const envelope::SealedRecord& record : records) {
    put_field(out, record.topic);
    put_field(out, record.key);
    put_field(out, record.route_header);
    put_varint(out, record.headers.size());
    for (const auto& [name, value] : record.headers) {
      put_field(out, name);
      put_field(out, value);
    }
    put_field(out, record.value);
  }
  put_varint(out, control.size());
  for (const ControlRecord& entry : control) {
    put_field(out, entry.topic);
    put_varint(out, static_cast<std::uint32_t>(entry.partition));
    put_field(out, entry.key);
    put_field(out, entry.value);
  }
  local_log::end_frame(out, start);
}

std::expected<void, std::string> parse_batch_body(std::string_view body, SpooledBatch& batch) {
  if (body.empty() || static_cast<std::uint8_t>(body.front()) != kSpoolFormatVersion) {
    return std::unexpected(
        fmt::format("unknown spool format version {}", body.empty() ? -1 : static_cast<int>(body.front())));
  }
  body.remove_prefix(1);
  std::uint64_t spooled_at = 0, records = 0;
  if (!get_varint(body, spooled_at) || !get_count(body, records)) return std::unexpected("truncated batch header");
  batch.spooled_at_ms = static_cast<std::int64_t>(spooled_at);
  std::string name;
  for (std::uint64_t i = 0; i < records; ++i) {
    envelope::SealedRecord& record = batch.records.emplace_back();
    std::uint64_t headers = 0;
    if (!get_field(body, record.topic) || !get_field(body, record.key) || !get_field(body, record.route_header) ||
        !get_count(body, headers)) {
      return std::unexpected(fmt::format("record {} overruns the entry", i));
    }
    for (std::uint64_t h = 0; h < headers; ++h) {
      std::string value;
      if (!get_field(body, name) || !get_field(body, value)) {
        return std::unexpected(fmt::format("header {} of record {} overruns the entry", h, i));
      }
      const auto interned = intern(name);
      if (!interned) return std::unexpected(fmt::format("more than {} distinct header names", kMaxHeaderNames));
      record.headers.emplace_back(*interned, std::move(value));
    }
    if (!get_field(body, record.value)) return std::unexpected(fmt::format("record {} overruns the entry", i));
  }
  std::uint64_t controls = 0;
  if (!get_count(body, controls)) return std::unexpected("truncated control record count");
  for (std::uint64_t i = 0; i < controls; ++i) {
    ControlRecord& entry = batch.control.emplace_back();
    std::uint64_t partition = 0;
    if (!get_field(body, entry.topic) || !get_varint(body, partition) || partition > UINT32_MAX ||
        !get_field(body, entry.key) || !get_field(body, entry.value)) {
      return std::unexpected(fmt::format("control record {} overruns the entry", i));
    }
    entry.partition = static_cast<std::int32_t>(static_cast<std::uint32_t>(partition));
  }
  if (!body.empty()) return std::unexpected(fmt::format("{} bytes after the last control record", body.size()));
  return {};
}

}  // namespace telegate::sinks::spool
