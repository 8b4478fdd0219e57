// Reads topics back from the real broker the way a downstream consumer would: isolation level
// read_committed, so only committed transactions are visible. Shared by the integration tests
// and `telegate-sim audit`.
//
// Each call creates its own consumer (a fresh group, nothing committed) on the calling thread
// and destroys it before returning; errors throw std::runtime_error (test and tool code only).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "telegate/envelope/envelope.hpp"

namespace telegate::testing {

struct KafkaMessage {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string value;
  std::int64_t timestamp_ms = -1;  // CreateTime (the producer's), or -1 if it has none
};

// Every committed message of `topic` from the beginning, stopping once `expected` messages have
// arrived, or when nothing new arrived for `idle` (asking for one more than you expect makes
// the reader wait out `idle`, so that duplicates would show). Throws if the topic never appears
// within `timeout`.
std::vector<KafkaMessage> read_committed(const std::string& bootstrap, const std::string& topic, std::size_t expected,
                                         std::chrono::milliseconds idle = std::chrono::seconds(4),
                                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Every committed message of every partition of `topic`, from the beginning to each partition's
// end at the time of the call (the last stable offset: an open transaction's records are not
// waited for). For audits that must not guess how many records to expect. Throws if the topic
// does not exist within `timeout`, or if the partitions' ends are not reached within it.
std::vector<KafkaMessage> read_committed_to_end(const std::string& bootstrap, const std::string& topic,
                                                std::chrono::milliseconds timeout = std::chrono::seconds(120));

// Who must have sent every record an audit counts; a record from anyone else fails the audit.
struct ExpectedOrigin {
  std::string tenant;
  envelope::SourceProtocol protocol;
};

// msg_id → how many records of `messages` carry it (Protobuf envelopes). Throws if a value is
// not an envelope, or not from `origin` when given: every audit of "acknowledged once, never
// twice" counts this way.
std::map<std::string, int> msg_id_copies(const std::vector<KafkaMessage>& messages,
                                         const std::optional<ExpectedOrigin>& origin = std::nullopt);

// The audit an exactly-once test ends with: msg_id → copies committed to `topic`, reading one
// more than `expected` so that a duplicate would show.
std::map<std::string, int> committed_copies(const std::string& bootstrap, const std::string& topic,
                                            std::size_t expected,
                                            const std::optional<ExpectedOrigin>& origin = std::nullopt);

// msg_id → copies from the `tg-route` header (`id=`), without decoding values, so that any
// envelope format counts. Throws if a message has no readable `tg-route` header.
std::map<std::string, int> route_msg_id_copies(const std::vector<KafkaMessage>& messages);

}  // namespace telegate::testing
