// The Kafka spool: its segment log (shared with the local log), its entry format, and the
// spooling sink's modes against librdkafka's mock cluster (broker down → spooled and
// acknowledged; broker back → replayed with the position record in the same transaction).
#include <doctest/doctest.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "kafka_mock.hpp"
#include "scratch_dir.hpp"
#include "local_log/log_format.hpp"
#include "local_log/segment_log.hpp"
#include "spool/spool_format.hpp"
#include "telegate/sinks/spool.hpp"

using namespace telegate;
using namespace telegate::testing;
namespace fs = std::filesystem;

namespace {


prometheus::Histogram& histogram(prometheus::Registry& registry) {
  return prometheus::BuildHistogram().Name("test_fsync").Register(registry).Add({}, prometheus::Histogram::BucketBoundaries{1});
}

sinks::local_log::SegmentLogConfig log_config(const fs::path& directory, std::uint64_t segment_bytes) {
  return {directory, ".tgtest", "test.directory", sinks::FsyncPolicy::always, std::chrono::milliseconds(10),
          segment_bytes};
}

// Appends `count` one-entry appends of `body` and waits until every one is written.
void append_entries(sinks::local_log::SegmentLog& log, int count, const std::string& body) {
  std::atomic<int> done{0};
  for (int i = 0; i < count; ++i) {
    sinks::local_log::Append append;
    const std::size_t start = sinks::local_log::begin_frame(append.frames);
    append.frames += body + std::to_string(i);
    sinks::local_log::end_frame(append.frames, start);
    append.entries = 1;
    append.done = [&done](std::expected<std::uint64_t, std::string> written) {
      CHECK(written.has_value());
      ++done;
    };
    REQUIRE(log.append(std::move(append)));
  }
  while (done < count) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

std::vector<std::string> read_all(const fs::path& directory, std::uint64_t from) {
  sinks::local_log::SegmentReader reader(directory, ".tgtest");
  std::vector<std::string> bodies;
  for (std::uint64_t at = from;;) {
    const auto read = reader.read(at, UINT64_MAX, 100, [&](std::uint64_t offset, std::string_view body) {
      CHECK(offset == from + bodies.size());
      bodies.emplace_back(body);
    });
    REQUIRE(read.has_value());
    if (*read == at) return bodies;
    at = *read;
  }
}

}  // namespace

TEST_CASE("segment log: append, read from any position, roll, delete consumed segments, cut a torn tail") {
  ScratchDir dir;
  prometheus::Registry registry;
  auto& fsync = histogram(registry);
  {
    sinks::local_log::SegmentLog log(log_config(dir.path, 1u << 10), 7, fsync);
    CHECK(log.end_offset() == 7);  // an empty directory numbers from the given offset
    log.start();
    append_entries(log, 100, std::string(40, 'x'));
    log.stop();
  }
  auto segments = sinks::local_log::list_segments(dir.path, ".tgtest");
  CHECK(segments.size() > 3);  // 100 × ~50 bytes over 1 KiB segments
  CHECK(segments.front().first == 7);

  const auto all = read_all(dir.path, 7);
  REQUIRE(all.size() == 100);
  CHECK(all[0] == std::string(40, 'x') + "0");
  CHECK(all[99] == std::string(40, 'x') + "99");
  const auto tail = read_all(dir.path, 57);
  REQUIRE(tail.size() == 50);
  CHECK(tail[0] == std::string(40, 'x') + "50");

  {
    // A crash mid-write: half a frame at the end of the newest segment.
    std::ofstream torn(segments.back().second, std::ios::binary | std::ios::app);
    torn << std::string("\x30\x00\x00\x00\x01\x02", 6);
  }
  {
    sinks::local_log::SegmentLog log(log_config(dir.path, 1u << 10), 0, fsync);
    CHECK(log.end_offset() == 107);
    CHECK(log.first_offset() == 7);
    const std::uint64_t before = log.disk_bytes();
    const std::uint64_t freed = log.delete_below(60);
    CHECK(freed > 0);
    CHECK(log.disk_bytes() == before);  // disk_bytes() is the size found at start-up
    const auto remaining = sinks::local_log::list_segments(dir.path, ".tgtest");
    CHECK(remaining.front().first <= 60);
    CHECK(remaining.front().first > 7);
    log.start();
    append_entries(log, 1, "after");
    log.stop();
  }
  const auto rest = read_all(dir.path, 60);
  REQUIRE(rest.size() == 48);
  CHECK(rest.back() == "after0");  // the torn tail is gone, the next entry follows the last intact one
  CHECK(log_config(dir.path, 1).suffix == ".tgtest");
  CHECK(sinks::local_log::SegmentLog(log_config(dir.path, 1u << 10), 0, fsync).delete_below(UINT64_MAX) > 0);
  CHECK(sinks::local_log::list_segments(dir.path, ".tgtest").size() == 1);  // never the newest
}

TEST_CASE("spool entries keep records with their headers and control records, and refuse damage") {
  std::vector<envelope::SealedRecord> records(2);
  records[0] = {"m-1", false, "telemetry.acme.location", "truck-1", "v=1", "value-1", {{"ce_id", "m-1"}, {"content-type", "application/json"}}};
  records[1] = {"m-2", false, "telemetry.acme.sensor", "truck-2", "v=1", std::string(300, 'z'), {}};
  const std::vector<sinks::ControlRecord> control = {{"_telegate_dedup", 7, "gw-1", std::string(32, 'k')}};
  std::string frame;
  sinks::spool::append_batch_frame(records, control, 1'700'000'000'000, frame);
  const auto body = sinks::local_log::read_frame_body(frame);
  REQUIRE(body.status == sinks::local_log::FrameStatus::ok);
  sinks::spool::SpooledBatch batch;
  REQUIRE(sinks::spool::parse_batch_body(body.body, batch).has_value());
  CHECK(batch.spooled_at_ms == 1'700'000'000'000);
  REQUIRE(batch.records.size() == 2);
  CHECK(batch.records[0].topic == "telemetry.acme.location");
  CHECK(batch.records[0].key == "truck-1");
  CHECK(batch.records[0].value == "value-1");
  REQUIRE(batch.records[0].headers.size() == 2);
  CHECK(batch.records[0].headers[1].first == "content-type");
  CHECK(batch.records[1].value == std::string(300, 'z'));
  REQUIRE(batch.control.size() == 1);
  CHECK(batch.control[0].partition == 7);
  CHECK(batch.control[0].value == std::string(32, 'k'));

  sinks::spool::SpooledBatch damaged;
  CHECK_FALSE(sinks::spool::parse_batch_body(body.body.substr(0, body.body.size() - 3), damaged).has_value());
  std::string local_record;
  sinks::local_log::append_frame(records[0], local_record);
  CHECK_FALSE(sinks::spool::parse_batch_body(sinks::local_log::read_frame_body(local_record).body, damaged).has_value());
}

namespace {

struct SpoolHarness {
  explicit SpoolHarness(const MockCluster& cluster, const fs::path& directory, std::uint64_t max_bytes = 64u << 20) {
    kafka_config = config_for(cluster);
    kafka_config.delivery_timeout = std::chrono::milliseconds(1500);
    config.directory = directory;
    config.max_bytes = max_bytes;
    config.segment_bytes = 4096;
    config.replay_batch_bytes = 2048;
    config.position_topic = "mock.position";
  }
  std::unique_ptr<sinks::SpoolingSink> make(const MockCluster& cluster, prometheus::Registry& registry) {
    return sinks::make_spooling_sink(
        config, sinks::make_kafka_sink(kafka_config, registry), {"mock.position", 0, "gw-1", {}},
        [&cluster]() -> std::optional<std::uint64_t> {
          const auto positions = cluster.read("mock.position", 0);
          if (positions.empty()) return std::nullopt;
          return std::stoull(positions.back().value);
        },
        registry);
  }
  sinks::KafkaSinkConfig kafka_config;
  sinks::SpoolConfig config;
};

double gauge(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name) return family.metric.at(0).gauge.value;
  }
  return -1;
}

// Values of mock.topic in order of production across both partitions, by record value.
std::size_t produced(const MockCluster& cluster) {
  return cluster.read("mock.topic", 0).size() + cluster.read("mock.topic", 1).size();
}

// Distinct records on mock.topic. The mock writes no abort markers, so a transaction that timed
// out on a loaded machine and was retried shows up twice in produced(); exactly-once against a
// real broker's read_committed view is proven by integration_kafka_spool.
std::set<std::string> produced_values(const MockCluster& cluster) {
  std::set<std::string> values;
  for (const std::int32_t partition : {0, 1}) {
    for (auto& message : cluster.read("mock.topic", partition)) values.insert(std::move(message.value));
  }
  return values;
}

std::size_t distinct_produced(const MockCluster& cluster) { return produced_values(cluster).size(); }

}  // namespace

TEST_CASE("spooling sink: direct while Kafka is up; spooled and acknowledged while down; replayed once when back") {
  MockCluster cluster;
  rd_kafka_mock_topic_create(cluster.get(), "mock.position", 1, 1);
  ScratchDir dir;
  prometheus::Registry registry;
  SpoolHarness harness(cluster, dir.path);
  auto sink = harness.make(cluster, registry);
  sink->start();
  Counts direct;
  sink->submit(batch(10, direct));
  REQUIRE(eventually([&] { return direct.calls == 1; }));
  CHECK(direct.ok == 1);
  CHECK(gauge(registry, "telegate_spool_mode") == 0);
  CHECK(metric(registry, "telegate_spool_records_total", "spooled") == 0);

  rd_kafka_mock_broker_set_down(cluster.get(), 1);
  Counts down;
  for (int i = 0; i < 20; ++i) {
    sink->submit(batch(10, down));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(eventually([&] { return down.calls == 20; }));
  CHECK(down.ok == 20);  // every batch acknowledged from the spool, including any Kafka failed
  CHECK(metric(registry, "telegate_spool_records_total", "spooled") == 200);
  CHECK(gauge(registry, "telegate_spool_pending_records") == 200);
  CHECK(sink->ready());  // room left in the spool: the gateway stays ready

  rd_kafka_mock_broker_set_up(cluster.get(), 1);
  REQUIRE(eventually([&] { return gauge(registry, "telegate_spool_mode") == 0; }, std::chrono::seconds(60)));
  CHECK(metric(registry, "telegate_spool_records_total", "replayed") == 200);
  CHECK(gauge(registry, "telegate_spool_pending_records") == 0);
  Counts after;
  sink->submit(batch(10, after));
  // The producer that sat idle through the outage may still be in librdkafka's reconnect
  // back-off, so this batch can miss the 1.5 s delivery timeout and be spooled instead; it is
  // acknowledged either way, and must reach Kafka before the sink stops.
  REQUIRE(eventually([&] { return after.calls == 1; }));
  REQUIRE(eventually([&] { return gauge(registry, "telegate_spool_mode") == 0 &&
                                  gauge(registry, "telegate_spool_pending_records") == 0; },
                     std::chrono::seconds(60)));
  sink->stop();
  CHECK(after.ok == 1);
  CHECK(distinct_produced(cluster) == 10 + 200 + 10);  // nothing lost
  CHECK(produced(cluster) >= 10 + 200 + 10);
  const auto positions = cluster.read("mock.position", 0);
  REQUIRE(positions.size() >= 2);  // 20 entries of ~500 bytes, 2 KiB per replay transaction
  CHECK(positions.back().key == "gw-1");
  // 20 spooled batches, and the last one too if it missed the delivery timeout.
  const bool after_spooled = metric(registry, "telegate_spool_records_total", "spooled") == 210;
  CHECK(positions.back().value == (after_spooled ? "21" : "20"));
  CHECK(sinks::local_log::list_segments(dir.path, sinks::spool::kSpoolSuffix).size() == 1);  // replayed segments deleted
}

TEST_CASE("spooling sink: a full spool fails batches as unavailable (push-back)") {
  MockCluster cluster;
  rd_kafka_mock_topic_create(cluster.get(), "mock.position", 1, 1);
  ScratchDir dir;
  prometheus::Registry registry;
  SpoolHarness harness(cluster, dir.path, 3000);
  auto sink = harness.make(cluster, registry);
  sink->start();
  rd_kafka_mock_broker_set_down(cluster.get(), 1);
  REQUIRE(eventually([&] {
    Counts probe;
    sink->submit(batch(1, probe));
    eventually([&] { return probe.calls == 1; });
    return gauge(registry, "telegate_spool_mode") != 0;
  }));
  Counts counts;
  std::atomic<int> unavailable{0};
  for (int i = 0; i < 20; ++i) {
    auto full = batch(10, counts);
    full.on_complete = [&counts, &unavailable](sinks::SinkResult result) {
      ++counts.calls;
      (result ? counts.ok : counts.failed)++;
      if (!result && result.error().code == sinks::SinkErrc::unavailable) ++unavailable;
    };
    sink->submit(std::move(full));
  }
  REQUIRE(eventually([&] { return counts.calls == 20; }));
  CHECK(counts.ok >= 1);
  CHECK(unavailable > 0);
  CHECK(counts.ok + unavailable == 20);
  CHECK(gauge(registry, "telegate_spool_bytes") <= 3000);
  CHECK_FALSE(sink->ready());
  sink->stop();
}

TEST_CASE("spooling sink: a restart replays from the committed position only, and keeps unreplayed journals") {
  MockCluster cluster;
  rd_kafka_mock_topic_create(cluster.get(), "mock.position", 1, 1);
  ScratchDir dir;
  SpoolHarness harness(cluster, dir.path);
  {
    prometheus::Registry registry;
    auto sink = harness.make(cluster, registry);
    sink->start();
    rd_kafka_mock_broker_set_down(cluster.get(), 1);
    Counts down;
    for (int i = 0; i < 6; ++i) {
      auto spooled = batch(5, down);
      spooled.control.push_back({"mock.journal", 0, "gw-1", "journal-" + std::to_string(i)});
      sink->submit(std::move(spooled));
      REQUIRE(eventually([&] { return down.calls == i + 1; }));
    }
    CHECK(down.ok == 6);
    sink->stop();  // Kafka still down: nothing replayed
  }
  rd_kafka_mock_broker_set_up(cluster.get(), 1);
  rd_kafka_mock_topic_create(cluster.get(), "mock.journal", 1, 1);
  {
    // As if a killed predecessor had committed the first four entries.
    prometheus::Registry registry;
    auto producer = sinks::make_kafka_sink(harness.kafka_config, registry);
    producer->start();
    Counts marker;
    sinks::SinkBatch position;
    position.control.push_back({"mock.position", 0, "gw-1", "4"});
    position.on_complete = [&marker](sinks::SinkResult result) { (result ? marker.ok : marker.failed)++; };
    producer->submit(std::move(position));
    producer->stop();
    REQUIRE(marker.ok == 1);
  }
  prometheus::Registry registry;
  auto sink = harness.make(cluster, registry);
  sink->start();
  std::vector<std::string> journals;
  sink->visit_unreplayed_control([&](const sinks::ControlRecord& control) { journals.push_back(control.value); });
  CHECK(journals == std::vector<std::string>{"journal-4", "journal-5"});
  CHECK(gauge(registry, "telegate_spool_pending_records") == 10);
  REQUIRE(eventually([&] { return gauge(registry, "telegate_spool_mode") == 0; }, std::chrono::seconds(60)));
  sink->stop();
  CHECK(metric(registry, "telegate_spool_records_total", "replayed") == 10);
  CHECK(produced(cluster) == 10);
  const auto replayed_journals = cluster.read("mock.journal", 0);
  REQUIRE(replayed_journals.size() == 2);
  CHECK(replayed_journals[0].value == "journal-4");
  CHECK(cluster.read("mock.position", 0).back().value == "6");
}

TEST_CASE("spooling sink: an entry Kafka refuses for good at replay is set aside in dead-letter/, the rest replayed") {
  MockCluster cluster;
  rd_kafka_mock_topic_create(cluster.get(), "mock.position", 1, 1);
  rd_kafka_mock_topic_create(cluster.get(), "mock.journal", 1, 1);
  ScratchDir dir;
  SpoolHarness harness(cluster, dir.path);
  // Stands in for a topic's max.message.bytes below the gateway's limit: the producer refuses
  // the record, as the broker would in the delivery report; both fail the batch as too_large.
  harness.kafka_config.librdkafka["message.max.bytes"] = "4000";
  prometheus::Registry registry;
  auto sink = harness.make(cluster, registry);
  sink->start();
  rd_kafka_mock_broker_set_down(cluster.get(), 1);
  Counts down;
  constexpr int kEntries = 9, kRefused = 4;
  std::vector<std::string> replayable;
  for (int i = 0; i < kEntries; ++i) {
    auto spooled = batch(5, down);
    if (i == kRefused) spooled.records[2].value.assign(6000, 'x');
    for (const auto& record : spooled.records) {
      if (i != kRefused) replayable.push_back(record.value);
    }
    spooled.control.push_back({"mock.journal", 0, "gw-1", "journal-" + std::to_string(i)});
    sink->submit(std::move(spooled));
    REQUIRE(eventually([&] { return down.calls == i + 1; }));
  }
  CHECK(down.ok == kEntries);  // the oversized record was acknowledged: Kafka was not there to refuse it

  rd_kafka_mock_broker_set_up(cluster.get(), 1);
  REQUIRE(eventually([&] { return gauge(registry, "telegate_spool_mode") == 0; }, std::chrono::seconds(60)));
  sink->stop();
  CHECK(metric(registry, "telegate_spool_records_total", "replayed") == (kEntries - 1) * 5);
  CHECK(metric(registry, "telegate_spool_records_total", "dead_lettered") == 5);
  CHECK(gauge(registry, "telegate_spool_pending_records") == 0);
  // (The mock writes no abort markers: records produced before the refusal in aborted rounds
  // show up too, so only inclusion is checked here; integration_kafka_spool reads committed.)
  const auto values = produced_values(cluster);
  for (const auto& value : replayable) CHECK_MESSAGE(values.contains(value), value << " was not replayed");
  CHECK_FALSE(values.contains(std::string(6000, 'x')));
  CHECK(cluster.read("mock.position", 0).back().value == std::to_string(kEntries));
  std::set<std::string> journals;
  for (const auto& message : cluster.read("mock.journal", 0)) journals.insert(message.value);
  CHECK(journals.size() == kEntries);  // the set-aside entry's msg_ids stay known as accepted

  // The set-aside entry is a one-entry segment in the spool's own format, named by its offset.
  sinks::local_log::SegmentReader reader(dir.path / "dead-letter", std::string(sinks::spool::kSpoolSuffix));
  sinks::spool::SpooledBatch kept;
  const auto read = reader.read(kRefused, kRefused + 1, 1, [&](std::uint64_t offset, std::string_view body) {
    CHECK(offset == kRefused);
    CHECK(sinks::spool::parse_batch_body(body, kept).has_value());
  });
  REQUIRE(read.has_value());
  CHECK(*read == kRefused + 1);
  REQUIRE(kept.records.size() == 5);
  CHECK(kept.records[2].value.size() == 6000);
  CHECK(sinks::local_log::list_segments(dir.path / "dead-letter", sinks::spool::kSpoolSuffix).size() == 1);
}

TEST_CASE("spooling sink: a second process cannot open the same spool") {
  MockCluster cluster;
  ScratchDir dir;
  prometheus::Registry registry;
  SpoolHarness harness(cluster, dir.path);
  auto first = harness.make(cluster, registry);
  first->start();
  prometheus::Registry other;
  auto second = harness.make(cluster, other);
  CHECK_THROWS_WITH_AS(second->start(), doctest::Contains("sink.kafka.spool.directory"), std::runtime_error);
  first->stop();
}
