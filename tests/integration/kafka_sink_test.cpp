// The Kafka sink against the real broker: exactly once and in per-key order across many
// producer hand-overs; an unfinished transaction of a dead instance is never visible.
#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "eventually.hpp"
#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/sinks/kafka_sink.hpp"
#include "telegate/sinks/spool.hpp"

using namespace telegate;

namespace {

std::string unique(const std::string& prefix) { return prefix + std::to_string(std::random_device{}()); }

sinks::KafkaSinkConfig config_for(const std::string& transactional_prefix) {
  sinks::KafkaSinkConfig config;
  config.bootstrap_servers = testing::kafka_bootstrap();
  config.transactional_id_prefix = transactional_prefix;
  config.producers = 2;
  config.transaction_max_records = 250;  // many hand-overs between the two producers
  config.transaction_max_interval = std::chrono::milliseconds(20);
  config.delivery_timeout = std::chrono::milliseconds(30'000);
  return config;
}

sinks::SinkBatch batch_of(const std::string& topic, int batch, int records, std::atomic<int>& ok, std::atomic<int>& failed) {
  sinks::SinkBatch out;
  for (int i = 0; i < records; ++i) {
    envelope::SealedRecord& record = out.records.emplace_back();
    record.topic = topic;
    record.key = "device-" + std::to_string(i % 7);
    record.route_header = "v=1&t=it&mt=location&et=0&id=" + std::to_string(batch) + "-" + std::to_string(i);
    record.value = std::to_string(batch * 1000 + i);  // increasing per key: order is checkable
  }
  out.on_complete = [&ok, &failed](sinks::SinkResult result) { (result ? ok : failed)++; };
  return out;
}

// A successor with the same transactional id: its start fences the predecessor and aborts its
// open transaction; then it commits batch 2 (30 records) to `topic`. Returns its acknowledged
// batches (1 when all went well).
int run_successor(const std::string& transactional_prefix, const std::string& topic) {
  prometheus::Registry registry;
  auto config = config_for(transactional_prefix);
  config.producers = 1;
  auto successor = sinks::make_kafka_sink(config, registry);
  successor->start();
  std::atomic<int> ok{0}, failed{0};
  successor->submit(batch_of(topic, 2, 30, ok, failed));
  successor->stop();
  return ok;
}

// Only the successor's 30 records are visible to read_committed consumers.
void check_only_successor_committed(const std::string& topic) {
  const auto messages = testing::read_committed(testing::kafka_bootstrap(), topic, 31);
  CHECK(messages.size() == 30);
  for (const auto& message : messages) CHECK(message.headers[0].second.find("id=2-") != std::string::npos);
}

}  // namespace

TEST_CASE("every record exactly once, in per-key order, across many producer hand-overs") {
  const std::string topic = unique("it.sink.");
  prometheus::Registry registry;
  auto sink = sinks::make_kafka_sink(config_for(unique("it-sink-")), registry);
  sink->start();
  CHECK(sink->ready());

  constexpr int kBatches = 200;
  constexpr int kPerBatch = 50;
  std::atomic<int> ok{0}, failed{0};
  for (int batch = 0; batch < kBatches; ++batch) sink->submit(batch_of(topic, batch, kPerBatch, ok, failed));
  sink->stop();
  CHECK(ok == kBatches);
  CHECK(failed == 0);

  const auto messages = testing::read_committed(testing::kafka_bootstrap(), topic, kBatches * kPerBatch + 1);
  REQUIRE(messages.size() == kBatches * kPerBatch);
  std::map<std::string, int> seen;
  std::map<std::pair<std::string, std::int32_t>, long> last_value_per_key;
  for (const auto& message : messages) {
    REQUIRE(message.headers.size() == 1);
    CHECK(message.headers[0].first == "tg-route");
    ++seen[message.headers[0].second];
    const long value = std::stol(message.value);
    auto& last = last_value_per_key.try_emplace({message.key, message.partition}, -1).first->second;
    CHECK_MESSAGE(value > last, "key " << message.key << " out of order: " << value << " after " << last);
    last = value;
  }
  CHECK(seen.size() == kBatches * kPerBatch);
  for (const auto& [id, count] : seen) CHECK_MESSAGE(count == 1, id);
}

TEST_CASE("a record's Kafka timestamp is when the sink accepted its batch, not when it was produced") {
  const std::string topic = unique("it.timestamp.");
  prometheus::Registry registry;
  auto config = config_for(unique("it-timestamp-"));
  config.producers = 1;
  // Produced at the hand-over, 1.5 s after the first batch was accepted: a timestamp taken at
  // produce time would be that much later.
  config.transaction_min_interval = std::chrono::milliseconds(1'500);
  config.transaction_max_interval = std::chrono::milliseconds(1'500);
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  const auto unix_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::pair<std::int64_t, std::int64_t>> accepted;  // per batch: clock before and after submit()
  for (int batch = 0; batch < 2; ++batch) {
    if (batch > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const std::int64_t before = unix_ms();
    sink->submit(batch_of(topic, batch, 20, ok, failed));
    accepted.emplace_back(before, unix_ms());
  }
  testing::eventually([&] { return ok + failed >= 2; });
  const std::int64_t committed = unix_ms();
  sink->stop();
  REQUIRE(ok == 2);

  const auto messages = testing::read_committed(testing::kafka_bootstrap(), topic, 40);
  REQUIRE(messages.size() == 40);
  for (const auto& message : messages) {
    const int batch = std::stoi(message.value) / 1000;  // batch_of: value = batch * 1000 + i
    REQUIRE((batch == 0 || batch == 1));
    const auto [before, after] = accepted[static_cast<std::size_t>(batch)];
    CHECK_MESSAGE((message.timestamp_ms >= before && message.timestamp_ms <= after),
                  "batch " << batch << ": timestamp " << message.timestamp_ms << " outside its submit() [" << before
                           << ", " << after << "], committed at " << committed);
  }
}

TEST_CASE("a fenced instance's open transaction never becomes visible; its successor's records do") {
  const std::string topic = unique("it.fence.");
  const std::string transactional_prefix = unique("it-fence-");
  prometheus::Registry registry;

  // The first incarnation produces into a transaction that it never gets to commit: a long
  // interval keeps the transaction open while the successor starts with the same id.
  auto first_config = config_for(transactional_prefix);
  first_config.producers = 1;
  first_config.transaction_max_records = 1'000'000;
  first_config.transaction_min_interval = std::chrono::milliseconds(60'000);  // one producer: always free
  first_config.transaction_max_interval = std::chrono::milliseconds(60'000);
  first_config.delivery_timeout = std::chrono::milliseconds(5'000);
  auto first = sinks::make_kafka_sink(first_config, registry);
  first->start();
  std::atomic<int> first_ok{0}, first_failed{0};
  first->submit(batch_of(topic, 1, 40, first_ok, first_failed));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // in an open transaction, not committed

  CHECK(run_successor(transactional_prefix, topic) == 1);

  first->stop();  // its commit is refused (fenced): the batch fails rather than being reported durable
  CHECK(first_ok == 0);
  CHECK(first_failed == 1);

  check_only_successor_committed(topic);
}

TEST_CASE("a fenced spooling instance neither spools nor acknowledges what it could never replay") {
  const std::string topic = unique("it.spool-fence.");
  const std::string transactional_prefix = unique("it-spool-fence-");
  testing::TempDir dir;
  prometheus::Registry registry;
  auto first_config = config_for(transactional_prefix);
  first_config.producers = 1;
  first_config.transaction_min_interval = std::chrono::milliseconds(3'000);  // open while the successor starts
  first_config.transaction_max_interval = std::chrono::milliseconds(3'000);
  first_config.delivery_timeout = std::chrono::milliseconds(5'000);
  sinks::SpoolConfig spool;
  spool.directory = dir.path() / "spool";
  auto first = sinks::make_spooling_sink(spool, sinks::make_kafka_sink(first_config, registry),
                                         {"_telegate_spool", 0, transactional_prefix, {}},
                                         [] { return std::optional<std::uint64_t>(); }, registry);
  first->start();
  std::atomic<int> first_ok{0}, first_failed{0};
  first->submit(batch_of(topic, 1, 40, first_ok, first_failed));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // in an open transaction, not committed

  CHECK(run_successor(transactional_prefix, topic) == 1);

  testing::eventually([&] { return first_ok + first_failed > 0; });
  CHECK(first_failed == 1);  // fenced: not spooled, so not acknowledged
  CHECK(first_ok == 0);
  CHECK_FALSE(first->ready());
  first->submit(batch_of(topic, 3, 10, first_ok, first_failed));  // refused at once
  CHECK(first_failed == 2);
  first->stop();

  check_only_successor_committed(topic);
}

TEST_CASE("an instance fenced while under load stays unready and never fences its successor back") {
  const std::string topic = unique("it.fence-load.");
  const std::string transactional_prefix = unique("it-fence-load-");
  prometheus::Registry registry;
  auto first_config = config_for(transactional_prefix);
  first_config.delivery_timeout = std::chrono::milliseconds(5'000);
  auto first = sinks::make_kafka_sink(first_config, registry);
  first->start();
  // Both of the first instance's producers keep committing while the successor takes their ids.
  std::atomic<int> first_ok{0}, first_failed{0};
  std::atomic<bool> feeding{true};
  std::thread feeder([&] {
    for (int batch = 100; feeding; ++batch) {
      first->submit(batch_of(topic, batch, 20, first_ok, first_failed));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));

  prometheus::Registry successor_registry;
  auto successor = sinks::make_kafka_sink(config_for(transactional_prefix), successor_registry);
  successor->start();
  CHECK(testing::eventually([&] { return first_failed > 0; }, std::chrono::seconds(15)));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // whatever the first still tries, it tries now
  feeding = false;
  feeder.join();
  CHECK_FALSE(first->ready());

  // The successor still commits on both producers: no producer of the first took its ids back.
  std::atomic<int> ok{0}, failed{0};
  for (int batch = 0; batch < 20; ++batch) successor->submit(batch_of(topic, batch, 30, ok, failed));
  successor->stop();
  CHECK(ok == 20);
  CHECK(failed == 0);
  first->stop();
}
