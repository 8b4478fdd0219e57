#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>

#include "scratch_dir.hpp"
#include "telegate/sinks/local_log.hpp"

using namespace telegate;
namespace fs = std::filesystem;
using telegate::testing::ScratchDir;

namespace {

sinks::SinkBatch batch(int first, int count, std::atomic<int>& ok, std::atomic<int>& failed,
                       std::size_t value_bytes = 40) {
  sinks::SinkBatch out;
  for (int i = first; i < first + count; ++i) {
    auto& record = out.records.emplace_back();
    record.topic = "telemetry.acme.location";
    record.key = "truck-" + std::to_string(i % 3);
    record.route_header = "v=1&id=" + std::to_string(i);
    record.value = std::string(value_bytes, static_cast<char>('a' + i % 26)) + std::to_string(i);
  }
  out.on_complete = [&](sinks::SinkResult result) { (result ? ok : failed)++; };
  return out;
}

std::vector<sinks::LogEntry> read_all(const fs::path& dir) {
  std::vector<sinks::LogEntry> entries;
  const auto read = sinks::read_local_log(dir, [&](const sinks::LogEntry& entry) { entries.push_back(entry); });
  REQUIRE_MESSAGE(read.has_value(), (read ? "" : read.error().message));
  CHECK(*read == entries.size());
  return entries;
}

sinks::LocalLogConfig config_for(const fs::path& dir, sinks::FsyncPolicy fsync = sinks::FsyncPolicy::always) {
  sinks::LocalLogConfig config;
  config.directory = dir;
  config.fsync = fsync;
  config.segment_bytes = 1 << 20;
  return config;
}

// Starts a sink on `dir`, writes records [first, first + count) as one batch, stops it, and
// returns the (single) segment file.
fs::path write_and_stop(const fs::path& dir, int first, int count) {
  prometheus::Registry registry;
  std::atomic<int> ok{0}, failed{0};
  auto sink = sinks::make_local_log_sink(config_for(dir), registry);
  sink->start();
  sink->submit(batch(first, count, ok, failed));
  sink->stop();
  REQUIRE(ok == 1);
  return *fs::directory_iterator(dir);
}

}  // namespace

TEST_CASE("what is written reads back identically, in order, each batch completed once") {
  for (const auto policy : {sinks::FsyncPolicy::always, sinks::FsyncPolicy::interval, sinks::FsyncPolicy::never}) {
    CAPTURE(sinks::to_string(policy));
    ScratchDir dir;
    prometheus::Registry registry;
    std::atomic<int> ok{0}, failed{0};
    auto sink = sinks::make_local_log_sink(config_for(dir.path, policy), registry);
    sink->start();
    CHECK(sink->ready());
    for (int b = 0; b < 20; ++b) sink->submit(batch(b * 10, 10, ok, failed));
    sink->stop();
    CHECK(ok == 20);
    CHECK(failed == 0);
    const auto entries = read_all(dir.path);
    REQUIRE(entries.size() == 200);
    for (int i = 0; i < 200; ++i) {
      CHECK(entries[i].offset == static_cast<std::uint64_t>(i));
      CHECK(entries[i].record.route_header == "v=1&id=" + std::to_string(i));
      CHECK(entries[i].record.key == "truck-" + std::to_string(i % 3));
      CHECK(entries[i].record.value.ends_with(std::to_string(i)));
    }
  }
}

TEST_CASE("a restarted log continues its offsets, and segments roll at segment_bytes") {
  ScratchDir dir;
  prometheus::Registry registry;
  std::atomic<int> ok{0}, failed{0};
  for (int run = 0; run < 3; ++run) {
    auto sink = sinks::make_local_log_sink(config_for(dir.path), registry);
    sink->start();
    for (int b = 0; b < 10; ++b) sink->submit(batch(run * 1000 + b * 100, 100, ok, failed, 600));
    sink->stop();
  }
  CHECK(ok == 30);
  const auto entries = read_all(dir.path);
  REQUIRE(entries.size() == 3000);
  for (std::size_t i = 0; i < entries.size(); ++i) CHECK(entries[i].offset == i);
  std::size_t segments = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    ++segments;
    CHECK(entry.file_size() <= (1u << 20) + 700);  // a segment rolls before the batch that would overflow it
  }
  CHECK(segments >= 2);
}

TEST_CASE("a torn tail is cut off on start; intact records survive and new ones follow") {
  ScratchDir dir;
  const fs::path segment = write_and_stop(dir.path, 0, 5);
  const auto intact_size = fs::file_size(segment);
  {
    std::ofstream torn(segment, std::ios::binary | std::ios::app);
    torn.write("\x30\x00\x00\x00\x12\x34", 6);  // a crash mid-frame: header, no body
  }
  CHECK(read_all(dir.path).size() == 5);  // readers treat the torn tail as the end
  write_and_stop(dir.path, 5, 3);  // start-up cuts the tail before appending
  CHECK(fs::file_size(segment) > intact_size);
  const auto entries = read_all(dir.path);
  REQUIRE(entries.size() == 8);
  CHECK(entries[7].offset == 7);
  CHECK(entries[7].record.route_header == "v=1&id=7");
}

TEST_CASE("corruption inside the log is an error that names the file and position") {
  ScratchDir dir;
  const fs::path segment = write_and_stop(dir.path, 0, 5);
  {
    std::fstream file(segment, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(20);
    file.put('X');  // inside the first record's body: CRC mismatch
  }
  const auto read = sinks::read_local_log(dir.path, [](const sinks::LogEntry&) {});
  REQUIRE_FALSE(read.has_value());
  CHECK(read.error().message.find(segment.filename().string()) != std::string::npos);
  CHECK(read.error().message.find("byte 0") != std::string::npos);
  CHECK(read.error().message.find("CRC") != std::string::npos);
}

TEST_CASE("an unwritable directory fails start-up by name; a stopped sink refuses batches") {
  prometheus::Registry registry;
  auto sink = sinks::make_local_log_sink(config_for("/proc/telegate-cannot-exist"), registry);
  CHECK_THROWS_WITH_AS(sink->start(), doctest::Contains("sink.local_log.directory"), std::runtime_error);

  ScratchDir dir;
  auto working = sinks::make_local_log_sink(config_for(dir.path), registry);
  working->start();
  working->stop();
  std::atomic<int> ok{0}, failed{0};
  working->submit(batch(0, 1, ok, failed));
  CHECK(ok == 0);
  CHECK(failed == 1);
  CHECK_FALSE(working->ready());
}
