// The Kafka sink against librdkafka's in-process mock cluster, for what needs fault injection.
// (The mock cluster writes no transaction markers: read_committed visibility is tested against
// the real broker in tests/integration/kafka_sink_test.cpp.)
#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kafka_mock.hpp"
#include "telegate/sinks/kafka_sink.hpp"

using namespace telegate;
using namespace telegate::testing;

namespace {

// Kafka protocol API keys (the mock's error injection takes them; librdkafka keeps its names private).
constexpr std::int16_t kAddPartitionsToTxn = 24;
constexpr std::int16_t kEndTxn = 26;

}  // namespace

TEST_CASE("batches complete exactly once and stop() drains what was submitted") {
  MockCluster cluster;
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config_for(cluster), registry);
  sink->start();
  CHECK(sink->ready());
  for (int i = 0; i < 50; ++i) sink->submit(batch(30, counts));
  sink->stop();
  CHECK(counts.ok == 50);
  CHECK(counts.failed == 0);
  CHECK(counts.calls == 50);
  CHECK(metric(registry, "telegate_sink_records_total", "committed") == 1500);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "committed") >= 2);  // 100 records per transaction

  Counts late;
  sink->submit(batch(1, late));
  CHECK(late.failed == 1);
}

namespace {

// Only the intervals decide when a transaction is handed over.
sinks::KafkaSinkConfig interval_config(const MockCluster& cluster, int min_ms, int max_ms) {
  auto config = config_for(cluster);
  config.transaction_max_records = 1'000'000;
  config.transaction_min_interval = std::chrono::milliseconds(min_ms);
  config.transaction_max_interval = std::chrono::milliseconds(max_ms);
  return config;
}

// Waiting for batches that are timed, or submitted one after another, polls every millisecond:
// the poll adds no more than that to what is measured.
constexpr std::chrono::milliseconds kTimingPoll{1};

// Submits one batch at a time, each after the previous one completed, and returns how long each
// took from submit to completion.
std::vector<std::chrono::milliseconds> sequential_batches(const sinks::KafkaSinkConfig& config, int count) {
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  std::vector<std::chrono::milliseconds> took;
  for (int i = 0; i < count; ++i) {
    const auto submitted = std::chrono::steady_clock::now();
    sink->submit(batch(3, counts));
    eventually([&] { return counts.calls > i; }, std::chrono::seconds(10), kTimingPoll);
    took.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - submitted));
  }
  sink->stop();
  CHECK(counts.ok == count);
  return took;
}

// Submits one batch, waits for it, lets `pause` pass and returns how long a second batch took
// from submit to completion.
std::chrono::steady_clock::duration second_batch_after_pause(const sinks::KafkaSinkConfig& config,
                                                            std::chrono::milliseconds pause) {
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  sink->submit(batch(3, counts));
  REQUIRE(eventually([&] { return counts.calls == 1; }));
  std::this_thread::sleep_for(pause);
  const auto submitted = std::chrono::steady_clock::now();
  sink->submit(batch(3, counts));
  REQUIRE(eventually([&] { return counts.calls == 2; }, std::chrono::seconds(30), kTimingPoll));
  const auto took = std::chrono::steady_clock::now() - submitted;
  sink->stop();
  CHECK(counts.ok == 2);
  return took;
}

}  // namespace

// Group commit: a lone batch waits for the minimum interval plus one commit, not for the
// maximum interval (the rule before: every transaction stayed open transaction_max_interval).
TEST_CASE("under light load a transaction commits once it is the minimum interval old, not the maximum") {
  MockCluster cluster;
  // Both producers take turns: the second batch goes to the other producer, whose predecessor
  // has finished committing, and so on.
  for (const auto took : sequential_batches(interval_config(cluster, 5, 3'000), 6)) {
    CHECK(took < std::chrono::milliseconds(1'500));
  }
}

// submit() must wake a sink thread that has no transaction open: it sleeps on a 100 ms idle timer
// otherwise, and each lone batch would wait for it (the mock commits in ~10 ms).
TEST_CASE("a batch that finds the sink idle opens a transaction at once, not at the idle timer") {
  MockCluster cluster;
  auto took = sequential_batches(interval_config(cluster, 1, 3'000), 7);
  std::ranges::sort(took);
  CHECK(took[took.size() / 2] < std::chrono::milliseconds(50));
}

// The minimum interval bounds the commit rate: hand-overs are at least that far apart, the first
// counted from start().
TEST_CASE("no transaction is handed over sooner than the minimum interval after the previous one") {
  MockCluster cluster;
  const auto before_start = std::chrono::steady_clock::now();
  const auto took = sequential_batches(interval_config(cluster, 300, 5'000), 3);
  REQUIRE(took.size() == 3);
  // Each batch completed after its hand-over, and each hand-over was >= 300 ms after the previous.
  CHECK(std::chrono::steady_clock::now() - before_start >= std::chrono::milliseconds(900));
  for (const auto one : took) CHECK(one < std::chrono::milliseconds(3'000));
}

// Clients that wait for their acks send again only after the previous commit: a transaction they
// open then goes the minimum interval after the previous hand-over, not a whole interval after its
// own first record (which made every such cycle a commit plus a full interval).
TEST_CASE("a transaction opened after a pause is handed over an interval after the previous hand-over") {
  MockCluster cluster;
  // 200 of the 300 ms after the first hand-over pass idle. Counted from its own first record the
  // second batch would wait >= 300 ms; counted from the previous hand-over, ~100 ms plus the
  // mock's commit.
  CHECK(second_batch_after_pause(interval_config(cluster, 300, 5'000), std::chrono::milliseconds(200)) <
        std::chrono::milliseconds(300));
}

// A minimum equal to the maximum is a fixed interval: every transaction stays open that long, even
// one opened long after the previous hand-over (tests and operators use it to hold acks back).
TEST_CASE("with the minimum at the maximum every transaction stays open the whole interval") {
  MockCluster cluster;
  CHECK(second_batch_after_pause(interval_config(cluster, 300, 300), std::chrono::milliseconds(400)) >=
        std::chrono::milliseconds(300));
}

// submit() wakes the sink thread only when it must act before its timer: here the second batch
// fills the open transaction, which must be handed over then, not once its 5 s minimum interval
// has passed.
TEST_CASE("a transaction that reaches transaction_max_records is handed over at once, not at its interval") {
  MockCluster cluster;
  auto config = interval_config(cluster, 5'000, 10'000);
  config.transaction_max_records = 10;
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  const auto submitted = std::chrono::steady_clock::now();
  sink->submit(batch(5, counts));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the first batch opens the transaction
  sink->submit(batch(5, counts));
  eventually([&] { return counts.calls >= 2; }, std::chrono::seconds(10), kTimingPoll);
  CHECK(counts.ok == 2);
  CHECK(std::chrono::steady_clock::now() - submitted < std::chrono::milliseconds(2'500));
  sink->stop();
}

// A transaction's completions run on its producer's committer thread. A committer started per
// commit showed up as a new Linux thread id for every transaction (and cost a fresh thread's
// stack, allocator caches and page faults each time); one per producer shows at most
// `producers` ids however many transactions commit.
TEST_CASE("commits run on one long-lived committer thread per producer, not a new thread per transaction") {
  MockCluster cluster;
  auto config = interval_config(cluster, 1, 3'000);
  config.producers = 2;
  prometheus::Registry registry;
  Counts counts;
  std::mutex mutex;
  std::set<pid_t> committer_tids;
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  constexpr int kTransactions = 12;
  for (int i = 0; i < kTransactions; ++i) {  // one batch at a time: one transaction each
    sinks::SinkBatch one = batch(3, counts);
    one.on_complete = [&, inner = std::move(one.on_complete)](sinks::SinkResult result) {
      {
        std::lock_guard lock(mutex);
        committer_tids.insert(gettid());
      }
      inner(std::move(result));
    };
    sink->submit(std::move(one));
    eventually([&] { return counts.calls > i; }, std::chrono::seconds(10), kTimingPoll);
  }
  sink->stop();
  CHECK(counts.ok == kTransactions);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "committed") == kTransactions);
  CHECK(committer_tids.size() <= config.producers);
}

// stop() hands over the open transaction (here long before its 5 s minimum interval) and must
// not return, nor stop the committer, before that transaction has committed.
TEST_CASE("a transaction handed over by stop() is committed before stop() returns") {
  MockCluster cluster;
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(interval_config(cluster, 5'000, 10'000), registry);
  sink->start();
  sink->submit(batch(5, counts));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the batch opens the transaction
  CHECK(counts.calls == 0);
  sink->stop();
  CHECK(counts.ok == 1);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "committed") == 1);
}

TEST_CASE("exactly-once settings cannot be overridden") {
  MockCluster cluster;
  prometheus::Registry registry;
  for (const std::string key : {"enable.idempotence", "acks", "transactional.id"}) {
    auto config = config_for(cluster);
    config.librdkafka[key] = "0";
    auto sink = sinks::make_kafka_sink(config, registry);
    CHECK_THROWS_WITH_AS(sink->start(), doctest::Contains(key.c_str()), std::invalid_argument);
  }
}

TEST_CASE("the producer defaults follow the delivery timeout and are what the sink's producers get") {
  const auto value = [](const std::vector<std::pair<std::string, std::string>>& settings, const std::string& key) {
    std::string found;
    for (const auto& [name, setting] : settings) {
      if (name == key) found = setting;
    }
    return found;
  };
  sinks::KafkaSinkConfig config;
  config.delivery_timeout = std::chrono::milliseconds(45'000);
  auto settings = sinks::default_producer_settings(config);
  CHECK(value(settings, "message.timeout.ms") == "45000");
  CHECK(value(settings, "transaction.timeout.ms") == "90000");
  CHECK(value(settings, "compression.type") == "lz4");
  config.delivery_timeout = std::chrono::milliseconds(5'000);
  settings = sinks::default_producer_settings(config);
  CHECK(value(settings, "transaction.timeout.ms") == "60000");  // at least 60 s
  for (const auto& [name, setting] : settings) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char error[256];
    CHECK_MESSAGE(rd_kafka_conf_set(conf, name.c_str(), setting.c_str(), error, sizeof error) == RD_KAFKA_CONF_OK, name);
    rd_kafka_conf_destroy(conf);
  }
}

TEST_CASE("a retriable commit error is retried to success") {
  MockCluster cluster;
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config_for(cluster), registry);
  sink->start();
  rd_kafka_mock_push_request_errors(cluster.get(), kEndTxn, 2, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
  for (int i = 0; i < 5; ++i) sink->submit(batch(10, counts));
  sink->stop();
  CHECK(counts.ok == 5);
  CHECK(counts.failed == 0);
}

TEST_CASE("an abortable transaction is aborted and its batches re-produced, not dropped") {
  MockCluster cluster;
  prometheus::Registry registry;
  Counts counts;
  auto sink = sinks::make_kafka_sink(config_for(cluster), registry);
  sink->start();
  rd_kafka_mock_push_request_errors(cluster.get(), kAddPartitionsToTxn, 1,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  for (int i = 0; i < 5; ++i) sink->submit(batch(10, counts));
  sink->stop();
  CHECK(counts.ok == 5);
  CHECK(counts.failed == 0);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "aborted") >= 1);
}

// A started one-producer sink whose coordinator handles EndTxn when it arrives (the transaction
// commits) but answers only `answer_after` later: commit_transaction times out with the outcome
// unknown.
std::unique_ptr<sinks::Sink> sink_answered_late(const MockCluster& cluster, prometheus::Registry& registry,
                                                std::chrono::milliseconds delivery_timeout,
                                                std::chrono::milliseconds answer_after) {
  auto config = config_for(cluster);
  config.producers = 1;
  config.delivery_timeout = delivery_timeout;
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  rd_kafka_mock_broker_push_request_error_rtts(cluster.get(), 1, kEndTxn, 1, RD_KAFKA_RESP_ERR_NO_ERROR,
                                               static_cast<int>(answer_after.count()));
  return sink;
}

TEST_CASE("a commit in doubt is resumed past the delivery timeout until the broker answers, not failed") {
  MockCluster cluster;
  prometheus::Registry registry;
  const std::chrono::milliseconds delivery_timeout(1'500);
  auto sink = sink_answered_late(cluster, registry, delivery_timeout, std::chrono::milliseconds(4'000));
  Counts counts;
  const auto submitted = std::chrono::steady_clock::now();
  sink->submit(batch(10, counts));
  REQUIRE(eventually([&] { return counts.calls > 0; }, std::chrono::seconds(20)));
  // Failed at the delivery timeout, the device would resend records this commit wrote.
  CHECK(counts.ok == 1);
  CHECK(counts.failed == 0);
  CHECK(std::chrono::steady_clock::now() - submitted > delivery_timeout);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "in_doubt") == 1);
  CHECK(metric(registry, "telegate_kafka_transactions_total", "committed") == 1);
  sink->stop();
}

TEST_CASE("stop() gives up a commit in doubt after the resumption under way, failing it as in_doubt, and drains the rest") {
  MockCluster cluster;
  prometheus::Registry registry;
  auto sink = sink_answered_late(cluster, registry, std::chrono::milliseconds(1'000), std::chrono::milliseconds(60'000));
  std::atomic<int> calls{0};
  std::optional<sinks::SinkErrc> code;
  Counts replaced;
  auto in_doubt = batch(10, replaced);
  in_doubt.on_complete = [&](sinks::SinkResult result) {
    if (!result) code = result.error().code;
    ++calls;
  };
  sink->submit(std::move(in_doubt));
  REQUIRE(eventually([&] { return metric(registry, "telegate_kafka_transactions_total", "in_doubt") == 1; },
                     std::chrono::seconds(10)));
  // Waits for the one producer, which stays committing until stop() gives the doubt up.
  Counts after;
  sink->submit(batch(10, after));
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));  // resumed past the delivery timeout
  CHECK(calls == 0);
  const auto stopping = std::chrono::steady_clock::now();
  sink->stop();  // hangs if the producer is left mid-commit: it could begin no transaction
  CHECK(std::chrono::steady_clock::now() - stopping < std::chrono::seconds(10));
  REQUIRE(calls == 1);
  CHECK(code == sinks::SinkErrc::in_doubt);  // not `unavailable`: a spool must not take it
  CHECK(after.calls == 1);  // completed (failed: it waited past its delivery timeout)
}

TEST_CASE("with the broker down, batches fail after the delivery timeout instead of vanishing") {
  MockCluster cluster;
  prometheus::Registry registry;
  auto config = config_for(cluster);
  config.delivery_timeout = std::chrono::milliseconds(1500);
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  rd_kafka_mock_broker_set_down(cluster.get(), 1);
  Counts counts;
  sink->submit(batch(10, counts));
  eventually([&] { return counts.calls > 0; });
  CHECK(counts.failed == 1);
  CHECK(counts.ok == 0);
  CHECK_FALSE(sink->ready());

  rd_kafka_mock_broker_set_up(cluster.get(), 1);
  // Ready again without any traffic: an unready gateway would get none to prove itself with.
  CHECK(eventually([&] { return sink->ready(); }, std::chrono::seconds(10), std::chrono::milliseconds(50)));
  // Reconnect backoff may outlast this test's short delivery timeout for the first batch; each
  // batch must still complete (never silently), and within a few the sink must commit again.
  bool recovered = false;
  for (int attempt = 0; attempt < 10 && !recovered; ++attempt) {
    Counts after;
    sink->submit(batch(10, after));
    eventually([&] { return after.calls > 0; });
    REQUIRE(after.calls == 1);
    recovered = after.ok == 1;
  }
  CHECK(recovered);
  sink->stop();
}

TEST_CASE("a record the producer refuses outright fails its own batch, never the rest of its transaction") {
  MockCluster cluster;
  prometheus::Registry registry;
  auto config = config_for(cluster);
  config.librdkafka["message.max.bytes"] = "10000";  // producev refuses larger values at once
  config.transaction_max_records = 1000;
  config.transaction_max_interval = std::chrono::milliseconds(200);
  auto sink = sinks::make_kafka_sink(config, registry);
  sink->start();
  // The refused record's batch fails as too_large (no retry or spool can help it); the other
  // batch of the same transaction is re-produced without it and commits.
  std::atomic<int> calls{0};
  std::optional<sinks::SinkErrc> refused_code, innocent_code;
  const auto record_code = [&calls](std::optional<sinks::SinkErrc>& code) {
    return [&calls, &code](sinks::SinkResult result) {
      if (!result) code = result.error().code;
      ++calls;
    };
  };
  Counts unused;
  auto poisoned = batch(3, unused);
  poisoned.records[1].value.assign(20'000, 'x');
  poisoned.on_complete = record_code(refused_code);
  auto innocent = batch(2, unused);
  innocent.on_complete = record_code(innocent_code);
  sink->submit(std::move(poisoned));
  sink->submit(std::move(innocent));
  for (int i = 0; i < 100 && calls < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(calls == 2);
  CHECK(refused_code == sinks::SinkErrc::too_large);
  CHECK_FALSE(innocent_code.has_value());
  CHECK(metric(registry, "telegate_sink_records_total", "committed") == 2);
  CHECK(metric(registry, "telegate_sink_records_total", "failed") == 3);

  Counts after;
  sink->submit(batch(2, after));  // the next transaction is clean
  sink->stop();
  CHECK(after.calls == 1);  // completed (failed: it waited past its delivery timeout)
}

TEST_CASE("a batch's control records are produced in the same transaction as its records, where they are placed") {
  MockCluster cluster;
  rd_kafka_mock_topic_create(cluster.get(), "mock.journal", 3, 1);
  rd_kafka_mock_topic_create(cluster.get(), "mock.position", 2, 1);
  prometheus::Registry registry;
  auto sink = sinks::make_kafka_sink(config_for(cluster), registry);
  sink->start();
  Counts counts;
  auto with_control = batch(2, counts);
  with_control.control.push_back({"mock.journal", 2, "gw-1", std::string(32, 'k')});
  with_control.control.push_back({"mock.position", 1, "gw-1", "42"});
  sink->submit(std::move(with_control));
  sink->stop();
  CHECK(counts.ok == 1);
  CHECK(metric(registry, "telegate_sink_records_total", "committed") == 2);  // control records are not records
  const auto journal = cluster.read("mock.journal", 2);
  REQUIRE(journal.size() == 1);
  CHECK(journal[0].key == "gw-1");
  CHECK(journal[0].value == std::string(32, 'k'));
  const auto position = cluster.read("mock.position", 1);
  REQUIRE(position.size() == 1);
  CHECK(position[0].value == "42");
}
