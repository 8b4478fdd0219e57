#include "telegate/sinks/kafka_sink.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "telegate/codecs/clock.hpp"

namespace telegate::sinks {

namespace {

using Clock = std::chrono::steady_clock;

// librdkafka's error objects, owned and freed in one place.
struct KafkaError {
  explicit KafkaError(rd_kafka_error_t* error) : error_(error) {}
  ~KafkaError() {
    if (error_) rd_kafka_error_destroy(error_);
  }
  KafkaError(const KafkaError&) = delete;
  KafkaError& operator=(const KafkaError&) = delete;
  explicit operator bool() const noexcept { return error_ != nullptr; }
  bool retriable() const noexcept { return rd_kafka_error_is_retriable(error_); }
  bool requires_abort() const noexcept { return rd_kafka_error_txn_requires_abort(error_); }
  bool fatal() const noexcept { return rd_kafka_error_is_fatal(error_); }
  rd_kafka_resp_err_t code() const noexcept { return rd_kafka_error_code(error_); }
  std::string message() const { return rd_kafka_error_string(error_); }

 private:
  rd_kafka_error_t* error_;
};

// Fenced: a newer incarnation with our transactional.id took over. This instance is a zombie
// and must not write again — re-creating the producer would fence the legitimate owner.
bool is_fenced(rd_kafka_t* producer, const KafkaError& error) {
  const auto fenced = [](rd_kafka_resp_err_t code) {
    return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
  };
  if (fenced(error.code())) return true;
  char reason[256];
  return error.fatal() && fenced(rd_kafka_fatal_error(producer, reason, sizeof reason));
}

constexpr std::string_view kProtectedSettings[] = {"enable.idempotence", "acks", "transactional.id",
                                                   "bootstrap.servers"};

// Config allows up to this many producers (sink.kafka.producers); a message's delivery tag
// (DeliveryTag) packs the slot index below it.
constexpr std::size_t kMaxProducers = 8;

// Each produced message's opaque: which slot and which batch of its transaction it belongs to,
// so that a delivery report refusing it (the broker's own size limit) fails that batch alone.
struct DeliveryTag {
  std::size_t slot;
  std::size_t batch;

  void* encode() const noexcept { return reinterpret_cast<void*>(batch * kMaxProducers + slot + 1); }
  static std::optional<DeliveryTag> decode(void* opaque) noexcept {
    const auto value = reinterpret_cast<std::uintptr_t>(opaque);
    if (value == 0) return std::nullopt;
    return DeliveryTag{(value - 1) % kMaxProducers, (value - 1) / kMaxProducers};
  }
};

// A producer's topic handles, looked up once per topic name: producing by name
// (RD_KAFKA_V_TOPIC) makes librdkafka find or create the handle under its lock for every record.
// Owned by its ProducerSlot, used by whoever owns the slot's producer; cleared before that
// producer is destroyed.
class TopicHandles {
 public:
  TopicHandles() = default;
  TopicHandles(const TopicHandles&) = delete;
  TopicHandles& operator=(const TopicHandles&) = delete;
  ~TopicHandles() { clear(); }

  rd_kafka_topic_t* get(rd_kafka_t* producer, const std::string& name) {
    if (last_ != nullptr && last_name_ == name) return last_;  // consecutive records share a topic
    auto found = handles_.find(name);
    if (found == handles_.end()) found = handles_.emplace(name, rd_kafka_topic_new(producer, name.c_str(), nullptr)).first;
    last_name_ = name;
    last_ = found->second;
    return last_;
  }

  void clear() {
    for (auto& [name, handle] : handles_) rd_kafka_topic_destroy(handle);
    handles_.clear();
    last_ = nullptr;
  }

 private:
  std::unordered_map<std::string, rd_kafka_topic_t*> handles_;
  std::string last_name_;
  rd_kafka_topic_t* last_ = nullptr;
};

// A batch in a slot's transaction, with the Kafka timestamp (CreateTime) of its records: the
// wall-clock time the sink accepted it, read once per batch. Without an explicit timestamp
// librdkafka reads the wall clock (gettimeofday) for every message it creates.
struct TransactionBatch {
  SinkBatch batch;
  std::int64_t timestamp_ms = 0;
};

// One transactional producer, the batches of its open transaction, and its committer thread.
//
// Lifecycle: created by KafkaSink::start(), which also starts its committer; the committer is
// stopped and joined, and the producer destroyed, by KafkaSink::stop() once the sink thread has
// handed over its last transaction. While `state` is `open` the sink thread owns the slot (adds
// batches to it, and produces them when handing it over); while `committing` its committer owns
// it (commit, and on abortable errors abort and re-produce); `idle` means the sink thread may
// open a transaction on it. `state` changes only under KafkaSink::mutex_. The committer lives as
// long as the slot and sleeps on `handed_over` between transactions: a thread started per commit
// cost a fresh thread's allocator caches, stack and page faults every commit
// (docs/benchmarks.md §18.alloc). `retired` is the committer's alone until stop().
struct ProducerSlot {
  enum class State : std::uint8_t { idle, open, committing };

  std::size_t index = 0;
  std::string transactional_id;
  rd_kafka_t* producer = nullptr;
  TopicHandles topics;  // of `producer`
  State state = State::idle;
  // Not yet produced while the transaction is open: produce_all() hands them to librdkafka at
  // the hand-over (docs/kafka-sink.md, "Producing at the hand-over").
  std::vector<TransactionBatch> batches;
  std::size_t records = 0;
  // Set when the producer (at produce time) or the broker (in the delivery report) refused a
  // record outright (too large, …): committing would promise the device a record that is not
  // there, so the transaction is aborted, the batch that held the record (index in `batches`)
  // fails with `poisoned_code` (no retry or spool can help it), and the other batches are
  // re-produced into a fresh transaction without it.
  std::string poisoned;
  std::size_t poisoned_batch = 0;
  SinkErrc poisoned_code = SinkErrc::rejected;
  Clock::time_point opened_at;
  Clock::time_point oldest_batch_at;
  std::thread committer;
  std::condition_variable handed_over;  // `state` became `committing`, or the sink stops
  // Batches of a transaction this instance lost to fencing, already completed: the fenced
  // producer may still point at their values, so they are freed only after it is destroyed.
  std::vector<SinkBatch> retired;
};

// Lifecycle: start() creates the producers, then one committer thread per producer slot and the
// sink thread; stop() lets the sink thread hand over the open transaction and exit, then stops the
// committers once each has finished the transaction it holds, and destroys the producers.
// Threads: submit() runs on any thread and only queues under mutex_; the sink thread owns the
// queue's contents once taken and every slot that is `open` or `idle`; a slot's committer owns it
// while it is `committing` (ProducerSlot). Batch completions run on the committers, and on the
// sink thread for batches failed without a transaction (fenced), and on the caller of submit()
// once the sink is stopping.
class KafkaSink final : public Sink {
 public:
  KafkaSink(KafkaSinkConfig config, prometheus::Registry& registry)
      : config_(std::move(config)),
        counters_(registry, "kafka", "committed"),
        transactions_(prometheus::BuildCounter()
                          .Name("telegate_kafka_transactions_total")
                          .Help("Kafka transactions by outcome")
                          .Register(registry)),
        committed_transactions_(transactions_.Add({{"result", "committed"}})),
        aborted_transactions_(transactions_.Add({{"result", "aborted"}})),
        failed_transactions_(transactions_.Add({{"result", "failed"}})),
        in_doubt_transactions_(transactions_.Add({{"result", "in_doubt"}})),
        transaction_records_(prometheus::BuildHistogram()
                                 .Name("telegate_kafka_transaction_records")
                                 .Help("Records per committed Kafka transaction")
                                 .Register(registry)
                                 .Add({}, prometheus::Histogram::BucketBoundaries{10, 100, 1'000, 5'000, 10'000, 50'000,
                                                                                  100'000, 500'000})),
        commit_seconds_(prometheus::BuildHistogram()
                            .Name("telegate_kafka_commit_seconds")
                            .Help("Latency of flush + commit_transaction")
                            .Register(registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                             0.5, 1, 2.5, 5, 10})),
        queued_records_(prometheus::BuildGauge()
                            .Name("telegate_sink_queue_records")
                            .Help("Records submitted to a sink and not yet completed")
                            .Register(registry)
                            .Add({{"sink", "kafka"}})) {}

  ~KafkaSink() override {
    if (sink_thread_.joinable()) stop();
  }

  std::string_view name() const noexcept override { return "kafka"; }

  void start() override {
    for (const auto& [key, value] : config_.librdkafka) {
      for (const std::string_view protected_key : kProtectedSettings) {
        if (key == protected_key) {
          throw std::invalid_argument(fmt::format(
              "sink.kafka.librdkafka.{}: telegate sets this itself for exactly-once delivery and it cannot be "
              "overridden",
              key));
        }
      }
    }
    if (config_.producers == 0 || config_.producers > kMaxProducers) {
      throw std::invalid_argument(fmt::format("sink.kafka.producers: must be between 1 and {}", kMaxProducers));
    }
    // A maximum below the minimum wins (the gateway's config does the same for its YAML).
    config_.transaction_min_interval = std::min(config_.transaction_min_interval, config_.transaction_max_interval);
    slots_.resize(config_.producers);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      slots_[i] = std::make_unique<ProducerSlot>();
      slots_[i]->index = i;
      slots_[i]->transactional_id = fmt::format("{}-{}", config_.transactional_id_prefix, i);
      slots_[i]->producer = create_producer(slots_[i]->transactional_id);
    }
    for (auto& slot : slots_) slot->committer = std::thread([this, &slot = *slot] { run_committer(slot); });
    ready_ = true;
    last_hand_over_ = Clock::now();  // the first transaction, too, waits the minimum interval
    sink_thread_ = std::thread([this] { run(); });
  }

  void submit(SinkBatch batch) override {
    const std::size_t count = batch.records.size();
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        queue_.push_back(Pending{std::move(batch), Clock::now(), codecs::unix_ms_now()});
        queued_records_.Increment(static_cast<double>(count));
        queue_records_ += count;
        // Batches are produced only at the hand-over, so most of them can wait in the queue for
        // the sink thread's timer; waking it for each one cost it a context switch most requests.
        if (queue_records_ >= wake_at_queue_records_) {
          wake_at_queue_records_ = kNoWake;  // one wake-up is enough; the sink thread re-arms it
          wake_.notify_one();
        }
        return;
      }
    }
    batch.on_complete(std::unexpected(SinkError{SinkErrc::stopping, "the Kafka sink is shutting down"}));
  }

  // A fenced instance stays unready whatever its other producers still manage to commit.
  bool ready() const noexcept override { return ready_ && !fenced_ && !stopping_flag_; }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && !sink_thread_.joinable()) return;
      stopping_ = true;
      stopping_flag_ = true;
    }
    wake_.notify_all();
    if (sink_thread_.joinable()) sink_thread_.join();
    // The sink thread has handed over its last transaction: each committer finishes the one it
    // holds, if any, and then sees no more work coming.
    {
      std::lock_guard lock(mutex_);
      committers_stopping_ = true;
    }
    for (auto& slot : slots_) slot->handed_over.notify_one();
    for (auto& slot : slots_) {
      if (slot->committer.joinable()) slot->committer.join();
      slot->topics.clear();
      if (slot->producer) rd_kafka_destroy(slot->producer);
      slot->producer = nullptr;
      slot->retired.clear();
    }
  }

 private:
  struct Pending {
    SinkBatch batch;
    Clock::time_point submitted_at;
    std::int64_t timestamp_ms;  // TransactionBatch::timestamp_ms
  };

  rd_kafka_t* create_producer(const std::string& transactional_id) {
    char error_text[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::vector<std::pair<std::string, std::string>> settings = default_producer_settings(config_);
    for (const auto& [key, value] : config_.librdkafka) settings.emplace_back(key, value);
    settings.insert(settings.end(), {{"bootstrap.servers", config_.bootstrap_servers},
                                     {"enable.idempotence", "true"},
                                     {"acks", "all"},
                                     {"transactional.id", transactional_id}});
    for (const auto& [key, value] : settings) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::invalid_argument(fmt::format("sink.kafka.librdkafka.{}: {}", key, error_text));
      }
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int code, const char* reason, void* opaque) {
      auto* sink = static_cast<KafkaSink*>(opaque);
      if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sink->ready_ = false;
      spdlog::warn("kafka: {} ({})", reason, rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code)));
    });
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
      static_cast<KafkaSink*>(opaque)->on_delivery(*message);
    });
    rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error_text, sizeof error_text);
    if (!producer) throw std::runtime_error(fmt::format("sink.kafka: cannot create a producer: {}", error_text));
    const KafkaError init(rd_kafka_init_transactions(producer, 30'000));
    if (init) {
      const std::string message = init.message();
      rd_kafka_destroy(producer);
      throw std::runtime_error(fmt::format("sink.kafka: init_transactions for '{}' against {} failed: {}",
                                           transactional_id, config_.bootstrap_servers, message));
    }
    return producer;
  }

  // The sink thread: moves queued batches into the active producer's open transaction and hands
  // the transaction to its committer when it is big or old enough (hand_over_at), producing its
  // records just before.
  void run() {
    std::size_t active = 0;
    std::vector<Pending> taken;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        // Re-evaluated on every wake-up: a committer finishing moves the hand-over time forward
        // and may leave the active producer idle.
        for (;;) {
          wake_at_queue_records_ = records_to_act(active);
          if (stopping_ || queue_records_ >= wake_at_queue_records_) break;
          const auto until = slots_[active]->state == ProducerSlot::State::open
                                 ? hand_over_at(active)
                                 : Clock::now() + std::chrono::milliseconds(100);
          if (wake_.wait_until(lock, until) == std::cv_status::timeout) break;
        }
        wake_at_queue_records_ = kNoWake;  // busy: it looks at the queue again before it sleeps
        taken.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
        queue_.clear();
        queue_records_ = 0;
      }
      for (Pending& pending : taken) {
        ProducerSlot* slot = fenced_ ? nullptr : open_transaction(active);
        if (!slot) {
          fail_fenced(std::move(pending.batch));
          continue;
        }
        add_batch(*slot, std::move(pending));
        if (slot->records >= config_.transaction_max_records) active = hand_over(active);
      }
      taken.clear();
      ProducerSlot& slot = *slots_[active];
      bool stopping;
      bool committing;  // then its committer owns the producer (and may be re-creating it)
      bool due;
      {
        std::lock_guard lock(mutex_);
        stopping = stopping_ && queue_.empty();
        committing = slot.state == ProducerSlot::State::committing;
        due = slot.state == ProducerSlot::State::open && Clock::now() >= hand_over_at(active);
      }
      if (!committing) rd_kafka_poll(slot.producer, 0);
      if (slot.state == ProducerSlot::State::open && (stopping || due)) active = hand_over(active);
      if (stopping) break;
      if (!committing) probe_while_unready(slot.producer);
    }
  }

  // Group commit: the open transaction of slot `active` is handed over once
  // `transaction_min_interval` has passed since the previous hand-over finished, if the next
  // producer is free to take records (its previous commit has finished), and at the latest once it
  // is `transaction_max_interval` old. Under light load a record so waits at most one short
  // interval plus one commit; under load the next producer is still committing, records keep
  // joining this transaction, and commits run back to back with transactions as large as the
  // commit time makes them. (With one producer "the next" is this one, always free: it commits
  // every minimum interval.) The interval counts from the previous hand-over, not from this
  // transaction's first record, because clients that wait for their acks (MQTT QoS 1 windows, HTTP
  // connections) send their next records only after the previous commit: counted from those
  // records, every cycle would be a commit plus a full interval. A minimum that reaches the
  // maximum asks for a fixed interval instead: the maximum alone decides, counted from the
  // transaction's first record, so every transaction stays open that long. Caller holds mutex_.
  Clock::time_point hand_over_at(std::size_t active) const {
    const ProducerSlot& next = *slots_[(active + 1) % slots_.size()];
    const bool fixed_interval = config_.transaction_min_interval >= config_.transaction_max_interval;
    if (next.state != ProducerSlot::State::committing && !fixed_interval) {
      return last_hand_over_ + config_.transaction_min_interval;
    }
    return slots_[active]->opened_at + config_.transaction_max_interval;
  }

  // How many queued records make the sink thread act before its timer: with the active
  // transaction open, those that fill it to `transaction_max_records` (its hand-over time is
  // already timed); with the active producer idle, the first one (opening the transaction starts
  // its clock: a record must not wait for the idle timer); with it committing, none (its
  // committer wakes the sink thread when done). Caller holds mutex_.
  std::size_t records_to_act(std::size_t active) const {
    const ProducerSlot& slot = *slots_[active];
    switch (slot.state) {
      case ProducerSlot::State::open:
        return config_.transaction_max_records - std::min(slot.records, config_.transaction_max_records);
      case ProducerSlot::State::idle:
        return 1;
      case ProducerSlot::State::committing:
        return kNoWake;
    }
    return 1;
  }

  // An unready gateway gets no traffic (its readiness probe fails), so a successful commit
  // cannot be what makes it ready again: while unready, ask the cluster for metadata now and
  // then, and turn ready when it answers.
  void probe_while_unready(rd_kafka_t* producer) {
    if (ready_ || fenced_ || Clock::now() - last_probe_ < std::chrono::seconds(1)) return;
    last_probe_ = Clock::now();
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(producer, 0, nullptr, &metadata, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(metadata);
      ready_ = true;
    }
  }

  // Waits until the slot's previous transaction is committed, then begins a new one if needed.
  // nullptr when this instance has been fenced.
  ProducerSlot* open_transaction(std::size_t index) {
    ProducerSlot& slot = *slots_[index];
    std::unique_lock lock(mutex_);
    slot_idle_.wait(lock, [&] { return slot.state != ProducerSlot::State::committing; });
    if (slot.state == ProducerSlot::State::open) return &slot;
    lock.unlock();
    if (!begin(slot)) return nullptr;
    lock.lock();
    slot.state = ProducerSlot::State::open;
    slot.opened_at = Clock::now();
    return &slot;
  }

  // false when fenced.
  bool begin(ProducerSlot& slot) {
    for (;;) {
      const KafkaError error(rd_kafka_begin_transaction(slot.producer));
      if (!error) return true;
      spdlog::error("kafka: begin_transaction on {}: {}", slot.transactional_id, error.message());
      if ((error.fatal() || is_fenced(slot.producer, error)) && !recover(slot, error)) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  void mark_fenced(const ProducerSlot& slot) {
    if (!fenced_.exchange(true)) {
      spdlog::critical("kafka: transactional.id {} was taken over by another instance; this instance no longer "
                       "writes to Kafka and reports itself not ready",
                       slot.transactional_id);
    }
    ready_ = false;
  }

  void fail_fenced(SinkBatch batch) {
    queued_records_.Decrement(static_cast<double>(batch.records.size()));
    counters_.failed.Increment(static_cast<double>(batch.records.size()));
    counters_.batches.Increment();
    batch.on_complete(std::unexpected(
        SinkError{SinkErrc::fenced, "another instance took over this gateway's Kafka transactional id"}));
  }

  void add_batch(ProducerSlot& slot, Pending pending) {
    if (slot.batches.empty()) slot.oldest_batch_at = pending.submitted_at;
    slot.records += pending.batch.records.size();
    slot.batches.push_back(TransactionBatch{std::move(pending.batch), pending.timestamp_ms});
  }

  // Produces every batch of the slot's transaction at once, at the hand-over. librdkafka 2.0.2
  // registers a transaction's partitions with the coordinator (AddPartitionsToTxn) on a 1 ms
  // timer that it re-arms after every answer, and its main thread spins through any timer wait
  // shorter than a millisecond (rdkafka.c:2091-2094): ~2 ms of CPU per registration round.
  // Produced together, a transaction's partitions mostly share one round instead of joining in
  // several as batches arrive (docs/kafka-sink.md, "Producing at the hand-over").
  void produce_all(ProducerSlot& slot) {
    for (std::size_t index = 0; index < slot.batches.size(); ++index) produce_records(slot, index);
  }

  // Values are produced without RD_KAFKA_MSG_F_COPY: librdkafka points at the record's own
  // bytes, which stay put while the batch sits in `slot.batches` (the records' vector is moved,
  // never reallocated). A batch is freed only once librdkafka holds none of its messages: after
  // a commit (which flushes), an abort (which purges) or the producer's destruction (fenced:
  // ProducerSlot::retired). Keys and headers are copied by librdkafka whatever the flags.
  static constexpr int kProduceFlags = 0;

  // One record with its headers: tg-route alone on the common path (one V_HEADER, no header
  // list to build), or tg-route plus the format's own headers (CloudEvents).
  static rd_kafka_resp_err_t produce(ProducerSlot& slot, const envelope::SealedRecord& record, std::int64_t timestamp_ms,
                                     void* tag) {
    rd_kafka_topic_t* topic = slot.topics.get(slot.producer, record.topic);
// librdkafka's RD_KAFKA_V_* macros are C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    if (record.headers.empty()) {
      return rd_kafka_producev(
          slot.producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
          RD_KAFKA_V_HEADER(envelope::kRouteHeader.data(), record.route_header.data(),
                            static_cast<ssize_t>(record.route_header.size())),
          RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_MSGFLAGS(kProduceFlags), RD_KAFKA_V_OPAQUE(tag),
          RD_KAFKA_V_END);
    }
    rd_kafka_headers_t* headers = rd_kafka_headers_new(record.headers.size() + 1);
    rd_kafka_header_add(headers, envelope::kRouteHeader.data(), static_cast<ssize_t>(envelope::kRouteHeader.size()),
                        record.route_header.data(), static_cast<ssize_t>(record.route_header.size()));
    for (const auto& [name, value] : record.headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
    const rd_kafka_resp_err_t error = rd_kafka_producev(
        slot.producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_MSGFLAGS(kProduceFlags), RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
    if (error) rd_kafka_headers_destroy(headers);  // owned by the message only when produced
    return error;
  }

  // Produces every record of the batch into the open transaction. A record the producer refuses
  // outright poisons the transaction (it can no longer commit what the device was promised), so
  // the transaction is marked for abort; the committer re-produces the other batches after
  // aborting.
  void produce_records(ProducerSlot& slot, std::size_t index) {
    const TransactionBatch& batch = slot.batches[index];
    void* tag = DeliveryTag{slot.index, index}.encode();
    const std::int64_t timestamp_ms = batch.timestamp_ms;
    for (const envelope::SealedRecord& record : batch.batch.records) {
      if (!produce_or_poison(slot, index, record.topic, [&] { return produce(slot, record, timestamp_ms, tag); })) {
        return;
      }
    }
    for (const ControlRecord& control : batch.batch.control) {
      if (!produce_or_poison(slot, index, control.topic,
                             [&] { return produce_control(slot, control, timestamp_ms, tag); })) {
        return;
      }
    }
  }

  // Retries while the local queue is full; any other refusal poisons the transaction.
  template <class Produce>
  bool produce_or_poison(ProducerSlot& slot, std::size_t batch, const std::string& topic, Produce&& produce_one) {
    for (;;) {
      const rd_kafka_resp_err_t error = produce_one();
      if (error == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
      if (error == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(slot.producer, 10);
        continue;
      }
      poison(slot, batch, error, fmt::format("the producer refused a record for {}", topic));
      return false;
    }
  }

  // Marks the slot's transaction for abort because of one refused record (the first one counts:
  // the re-produced transaction finds any other again).
  static void poison(ProducerSlot& slot, std::size_t batch, rd_kafka_resp_err_t error, const std::string& what) {
    if (!slot.poisoned.empty()) return;
    slot.poisoned = fmt::format("{}: {}", what, rd_kafka_err2str(error));
    slot.poisoned_batch = batch;
    slot.poisoned_code = error == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? SinkErrc::too_large : SinkErrc::rejected;
    spdlog::error("kafka: {}", slot.poisoned);
  }

  // Delivery reports are served by whoever polls or flushes the producer, i.e. the thread that
  // owns its slot. A record the broker refuses for its size (the topic's max.message.bytes is
  // below the producer's message.max.bytes) poisons the transaction like a refusal at produce
  // time; other errors (purged by an abort, timed out) surface in commit_transaction.
  void on_delivery(const rd_kafka_message_t& message) {
    if (message.err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) return;
    const auto tag = DeliveryTag::decode(message._private);
    if (!tag || tag->slot >= slots_.size()) return;
    ProducerSlot& slot = *slots_[tag->slot];
    if (tag->batch >= slot.batches.size()) return;  // a batch of an earlier, aborted transaction
    poison(slot, tag->batch, message.err,
           fmt::format("the broker refused a record of {} bytes for {}", message.len, rd_kafka_topic_name(message.rkt)));
  }

  static rd_kafka_resp_err_t produce_control(ProducerSlot& slot, const ControlRecord& control, std::int64_t timestamp_ms,
                                             void* tag) {
    rd_kafka_topic_t* topic = slot.topics.get(slot.producer, control.topic);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    return rd_kafka_producev(slot.producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(control.partition),
                             RD_KAFKA_V_KEY(control.key.data(), control.key.size()),
                             RD_KAFKA_V_VALUE(const_cast<char*>(control.value.data()), control.value.size()),
                             RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_MSGFLAGS(kProduceFlags),
                             RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
  }

  // Produces the active producer's batches and flushes it (its records are now in the log,
  // uncommitted, so the next producer's records land after them: per-partition order holds),
  // then wakes its committer to finish the transaction while the next producer takes new records.
  std::size_t hand_over(std::size_t index) {
    ProducerSlot& slot = *slots_[index];
    produce_all(slot);
    rd_kafka_flush(slot.producer, static_cast<int>(config_.delivery_timeout.count()));
    last_hand_over_ = Clock::now();
    {
      std::lock_guard lock(mutex_);
      slot.state = ProducerSlot::State::committing;
    }
    slot.handed_over.notify_one();
    return (index + 1) % slots_.size();
  }

  // A slot's committer thread, from start() to stop(): commits each transaction handed over to
  // it. It exits only with no transaction in hand, so one handed over before stop() is still
  // committed or failed, never dropped.
  void run_committer(ProducerSlot& slot) {
    std::unique_lock lock(mutex_);
    for (;;) {
      slot.handed_over.wait(
          lock, [&] { return slot.state == ProducerSlot::State::committing || committers_stopping_; });
      if (slot.state != ProducerSlot::State::committing) return;
      lock.unlock();
      commit(slot);
      lock.lock();
    }
  }

  // Committer thread: commits, retrying retriable errors; on abortable errors aborts and
  // re-produces the same batches in a fresh transaction; gives up (failing the batches, with
  // nothing visible to read_committed consumers) only past the delivery timeout.
  //
  // Except a commit in doubt: once commit_transaction has returned without an outcome (it timed
  // out), its EndTxn may have reached the coordinator, which then completes the commit whatever
  // this producer does next (librdkafka refuses the abort; a new producer's init_transactions
  // finishes it). Failing the batches then would have their devices resend records that may be
  // in Kafka already, and a spool replay them: duplicates. So the commit is resumed, past the
  // delivery timeout too, until the broker says which. The devices wait for their answer;
  // their retries meanwhile are told to come back (de-duplication holds the msg_ids in flight).
  // Only stop() cuts a doubt short, after the resumption under way, failing the batches as
  // in_doubt: never spooled; a restarted gateway's de-duplication journal, written in the same
  // transaction, recognises their resent records if it did commit.
  void commit(ProducerSlot& slot) {
    const auto started = Clock::now();
    const auto give_up_at = slot.oldest_batch_at + config_.delivery_timeout;
    std::string last_error;
    bool committed = false;
    bool in_doubt = false;
    while (!committed) {
      if (!slot.poisoned.empty()) {
        // No retry makes the refused record acceptable, but the rest of its transaction can
        // commit without it: abort, fail that batch alone, re-produce the others.
        aborted_transactions_.Increment();
        const KafkaError abort_error(rd_kafka_abort_transaction(slot.producer, 10'000));
        if (abort_error && !recover(slot, abort_error)) break;
        refuse_poisoned(slot);
        if (!reproduce(slot)) break;
        continue;
      }
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(give_up_at - Clock::now());
      if (remaining.count() <= 0) {
        if (in_doubt && !stopping_flag_) {
          remaining = config_.delivery_timeout;
        } else {
          if (last_error.empty()) {
            last_error = fmt::format("sink.kafka.delivery_timeout_ms ({} ms) passed before the transaction could commit",
                                     config_.delivery_timeout.count());
          }
          break;
        }
      }
      const KafkaError error(rd_kafka_commit_transaction(slot.producer, static_cast<int>(remaining.count())));
      if (!error) {
        committed = true;
        break;
      }
      last_error = error.message();
      ready_ = false;
      if (is_fenced(slot.producer, error)) {
        mark_fenced(slot);
        break;
      }
      if (error.retriable()) {
        if (!in_doubt) {
          in_doubt_transactions_.Increment();
          spdlog::warn("kafka: commit on {} did not finish ({}); whether it committed is unknown until the broker "
                       "answers: resuming it, its {} records unacknowledged until then",
                       slot.transactional_id, last_error, slot.records);
        }
        in_doubt = true;
        continue;
      }
      // An abortable or fatal error is an outcome: the coordinator did not commit.
      in_doubt = false;
      spdlog::warn("kafka: commit on {} failed: {}", slot.transactional_id, last_error);
      if (error.requires_abort()) {
        aborted_transactions_.Increment();
        const KafkaError abort_error(rd_kafka_abort_transaction(slot.producer, static_cast<int>(remaining.count())));
        if (abort_error && abort_error.fatal() && !recover(slot, abort_error)) break;
      } else if (!recover(slot, error)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (!reproduce(slot)) break;
    }
    std::vector<TransactionBatch> batches = std::move(slot.batches);
    const std::size_t records = slot.records;
    if (!committed && !fenced_) {
      if (in_doubt) {
        spdlog::error("kafka: stopping with the commit on {} still in doubt ({}): its {} records are reported not "
                      "durable and may be in Kafka",
                      slot.transactional_id, last_error, records);
        complete(batches, records, failure(SinkErrc::in_doubt, "stopped before Kafka said whether it committed: " +
                                                                   last_error));
        // librdkafka refuses to begin or abort a transaction while a commit is in progress: a
        // new producer, whose init_transactions finishes or aborts that commit, can take the
        // transactions stop() still hands over.
        recreate(slot);
      } else {
        // Nothing of this transaction can become visible: it was never committed, and it is
        // aborted below or, if the broker is unreachable, by the new producer's
        // init_transactions before that writes anything. So the devices are told now: the
        // abort and a new producer may have to wait for the broker's return, and a spool must
        // not.
        complete(batches, records, failure(SinkErrc::unavailable, "not committed to Kafka: " + last_error));
        const KafkaError abort_error(rd_kafka_abort_transaction(slot.producer, 10'000));
        if (abort_error) recover(slot, abort_error);
      }
    }
    finish(slot, committed, started);
    if (committed) complete(batches, records, {});
    if (!committed && fenced_) {
      complete(batches, records,
               failure(SinkErrc::fenced, "another instance took over this gateway's Kafka transactional id"));
      for (TransactionBatch& batch : batches) {
        batch.batch.on_complete = nullptr;  // called already; lets go of what it captured
        slot.retired.push_back(std::move(batch.batch));
      }
    }
  }

  // Committer thread, after an abort: the slot's batches again, in a fresh transaction. false
  // when fenced.
  bool reproduce(ProducerSlot& slot) {
    if (!begin(slot)) return false;
    produce_all(slot);
    rd_kafka_flush(slot.producer, static_cast<int>(config_.delivery_timeout.count()));
    return true;
  }

  // Committer thread, after the poisoned transaction was aborted (so librdkafka points at none
  // of the batch's bytes any more): fails the batch that held the refused record.
  void refuse_poisoned(ProducerSlot& slot) {
    SinkBatch refused = std::move(slot.batches[slot.poisoned_batch].batch);
    slot.batches.erase(slot.batches.begin() + static_cast<std::ptrdiff_t>(slot.poisoned_batch));
    const std::size_t records = refused.records.size();
    slot.records -= records;
    queued_records_.Decrement(static_cast<double>(records));
    counters_.failed.Increment(static_cast<double>(records));
    counters_.batches.Increment();
    const SinkError error{slot.poisoned_code, std::move(slot.poisoned)};
    slot.poisoned.clear();
    refused.on_complete(std::unexpected(error));
  }

  // After a fatal error: a new producer in the slot, which fences what is left of the old one.
  // Not once this instance is fenced (by this error, or on another slot): a new producer would
  // then fence the instance that took over. false when fenced.
  bool recover(ProducerSlot& slot, const KafkaError& error) {
    if (is_fenced(slot.producer, error)) mark_fenced(slot);
    if (fenced_) return false;
    recreate(slot);
    return true;
  }

  void recreate(ProducerSlot& slot) {
    slot.topics.clear();
    rd_kafka_destroy(slot.producer);
    slot.producer = nullptr;
    while (!slot.producer) {
      try {
        slot.producer = create_producer(slot.transactional_id);
      } catch (const std::exception& error) {
        spdlog::error("kafka: {}", error.what());
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
  }

  // Releases the slot to the sink thread once its transaction is over.
  void finish(ProducerSlot& slot, bool committed, Clock::time_point started) {
    commit_seconds_.Observe(std::chrono::duration<double>(Clock::now() - started).count());
    (committed ? committed_transactions_ : failed_transactions_).Increment();
    if (committed) {
      transaction_records_.Observe(static_cast<double>(slot.records));
      ready_ = true;
    }
    {
      std::lock_guard lock(mutex_);
      slot.batches.clear();
      slot.records = 0;
      slot.poisoned.clear();
      slot.state = ProducerSlot::State::idle;
    }
    slot_idle_.notify_all();
    wake_.notify_all();  // the active transaction may be due now that this producer is free
  }

  static sinks::SinkResult failure(SinkErrc code, std::string message) {
    return std::unexpected(SinkError{code, std::move(message)});
  }

  void complete(std::vector<TransactionBatch>& batches, std::size_t records, const sinks::SinkResult& result) {
    queued_records_.Decrement(static_cast<double>(records));
    (result ? counters_.durable : counters_.failed).Increment(static_cast<double>(records));
    for (TransactionBatch& batch : batches) {
      counters_.batches.Increment();
      batch.batch.on_complete(result);
    }
  }

  KafkaSinkConfig config_;
  SinkCounters counters_;
  prometheus::Family<prometheus::Counter>& transactions_;
  prometheus::Counter& committed_transactions_;
  prometheus::Counter& aborted_transactions_;
  prometheus::Counter& failed_transactions_;
  prometheus::Counter& in_doubt_transactions_;  // commits that timed out: resumed, counted again when they end
  prometheus::Histogram& transaction_records_;
  prometheus::Histogram& commit_seconds_;
  prometheus::Gauge& queued_records_;

  std::mutex mutex_;
  std::condition_variable wake_;       // the sink thread: batches to act on, a producer free, or stop
  std::condition_variable slot_idle_;  // a committer finished
  std::vector<Pending> queue_;
  std::size_t queue_records_ = 0;  // records in queue_
  // submit() wakes the sink thread once queue_records_ reaches this (records_to_act()).
  static constexpr std::size_t kNoWake = std::numeric_limits<std::size_t>::max();
  std::size_t wake_at_queue_records_ = 1;
  bool stopping_ = false;
  bool committers_stopping_ = false;  // set by stop() after the sink thread's last hand-over
  std::atomic<bool> stopping_flag_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> fenced_{false};
  std::vector<std::unique_ptr<ProducerSlot>> slots_;
  std::thread sink_thread_;
  Clock::time_point last_probe_;  // sink thread only
  // When the previous hand-over's flush returned (start() before the first): the minimum
  // interval counts from here. Written by the sink thread (start() before it runs), read by it.
  Clock::time_point last_hand_over_;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> default_producer_settings(const KafkaSinkConfig& config) {
  const auto delivery_ms = config.delivery_timeout.count();
  return {
      {"compression.type", "lz4"},
      {"linger.ms", "100"},  // commits flush at once anyway (docs/kafka-sink.md, "Settings")
      {"batch.size", "1000000"},
      {"queue.buffering.max.messages", "2000000"},
      {"queue.buffering.max.kbytes", "2097152"},
      {"message.timeout.ms", std::to_string(delivery_ms)},
      {"transaction.timeout.ms", std::to_string(std::max<std::int64_t>(60'000, 2 * delivery_ms))},
  };
}

std::unique_ptr<Sink> make_kafka_sink(KafkaSinkConfig config, prometheus::Registry& metrics) {
  return std::make_unique<KafkaSink>(std::move(config), metrics);
}

}  // namespace telegate::sinks
