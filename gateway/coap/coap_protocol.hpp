// CoAP request helpers that need no libcoap: Content-Format → media type, the `t` Uri-Query
// token, and the recent-message cache that makes retransmitted confirmable requests harmless.
// Kept apart from the listener so that unit tests and the fuzz target reach them directly.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace telegate::gateway::coap {

// The media type the codecs read for a CoAP Content-Format number (RFC 7252 §12.3 registry):
// 50 application/json, 60 application/cbor, 110 application/senml+json,
// 112 application/senml+cbor, 42 application/octet-stream → application/x-protobuf (the
// telegate Protobuf batch; CoAP has no number for Protobuf). nullopt: not supported (4.15).
std::optional<std::string_view> media_type_for(std::uint32_t content_format) noexcept;
// "50, 60, 110, 112, 42": for diagnostics.
std::string_view supported_content_formats() noexcept;

// The value of the first `t=` item of a Uri-Query as libcoap joins the options ("a=1&t=x").
// Empty when there is none.
std::string_view query_token(std::string_view query) noexcept;

// What the gateway answered to one (endpoint, message id): a retransmission of a confirmable
// request gets the same answer instead of being ingested again (RFC 7252 §4.5). libcoap 4.3.1
// passes retransmitted requests to the handler again once their answer has gone out, so the
// listener keeps this itself.
struct RecentAnswer {
  enum class State : std::uint8_t {
    pending,      // records are with the sink; the answer has not gone out yet
    piggybacked,  // answered in the ACK: `code`, `content_format` and `payload` are that answer
    separate,     // answered in a separate response (libcoap retransmits that one itself)
  };
  State state = State::pending;
  std::uint8_t code = 0;                 // CoAP code byte (class << 5 | detail)
  std::optional<std::uint16_t> content_format;
  std::optional<std::uint32_t> max_age;
  std::string payload;
};

// Lifecycle: owned by the CoAP listener and used only on its I/O thread. Bounded: entries live
// `lifetime` (EXCHANGE_LIFETIME, 247 s, by default) and at most `max_entries` are kept — the
// oldest go first, so under a flood dedup degrades to a shorter window, never to unbounded memory.
class RecentMessages {
 public:
  using Clock = std::chrono::steady_clock;
  RecentMessages(std::size_t max_entries, std::chrono::seconds lifetime = std::chrono::seconds(247));

  // The key of one message: the remote endpoint's bytes (address, port, transport) and its id.
  static std::string key(std::string_view endpoint, std::uint16_t message_id);
  // The answer remembered for `key`, or nullptr when this message was not seen within the window.
  RecentAnswer* find(const std::string& key, Clock::time_point now);
  // Remembers a new message as pending and returns its entry (valid until the next insert).
  RecentAnswer& insert(const std::string& key, Clock::time_point now);
  std::size_t size() const noexcept { return answers_.size(); }

 private:
  void expire(Clock::time_point now);

  std::size_t max_entries_;
  std::chrono::seconds lifetime_;
  std::unordered_map<std::string, RecentAnswer> answers_;
  std::deque<std::pair<Clock::time_point, std::string>> order_;  // insertion order = expiry order
};

}  // namespace telegate::gateway::coap
