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
  std::optional<std::uint32_t> block1;  // Block1 echoed in a 2.31 Continue or the final answer
  std::optional<std::uint32_t> size1;   // Size1 = the limit, in a 4.13
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

// A Block1 option value (RFC 7959 §2.2): block number, More flag, size exponent (size = 2^(szx+4)).
struct Block1 {
  std::uint32_t num = 0;
  bool more = false;
  std::uint8_t szx = 0;
  std::size_t size() const noexcept { return std::size_t{1} << (szx + 4); }
  std::size_t offset() const noexcept { return static_cast<std::size_t>(num) << (szx + 4); }
  std::uint32_t encode() const noexcept { return num << 4 | (more ? 8u : 0u) | szx; }
};
// nullopt for SZX 7 (BERT, only over reliable transports, RFC 8323) and numbers above 2^20-1.
std::optional<Block1> decode_block1(std::uint32_t value) noexcept;

// What to answer to one block of a Block1 request.
enum class BlockVerdict : std::uint8_t {
  next,        // stored: 2.31 Continue, echoing the block
  complete,    // the last block: `body` is the whole request body, ingest it
  too_large,   // 4.13 with Size1 = max_body_bytes: announced or received size crosses the limit
  incomplete,  // 4.08: a block that does not continue a known transfer (lost, reordered, expired)
  bad_block,   // 4.00: a non-final block whose payload is not exactly its block size
  busy,        // 5.03: the table is full (transfers or bytes); retry later
};

struct BlockResult {
  BlockVerdict verdict = BlockVerdict::incomplete;
  std::string body;  // only for `complete`
};

// Block1 reassembly (RFC 7959 §2.3, atomic "store and forward"): telegate's own, because
// libcoap 4.3.1 with COAP_BLOCK_SINGLE_BODY reassembles before the handler can refuse (and
// allocates whatever Size1 the client announces). Memory is bounded three ways: one body is at
// most max_body_bytes (refused at the first block that would cross it, or at block 0 when Size1
// announces more), at most max_transfers at once and max_total_bytes of buffers together
// (counting capacity, not just payload), at most kPerEndpoint transfers per remote endpoint.
// Blocks must arrive in order (a client sends the next block only after the 2.31 of the
// previous one; a retransmitted block never gets here, the message-id cache answers it); a
// block that does not continue its transfer ends it with 4.08. Idle transfers expire.
//
// Lifecycle: owned by the CoAP listener and used only on its I/O thread. Never throws on input
// (allocation failure aside, as everywhere).
class Block1Transfers {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kPerEndpoint = 4;  // Request-Tag lets a device run a few at once

  struct Limits {
    std::size_t max_body_bytes = 64u << 10;
    std::size_t max_transfers = 256;
    std::size_t max_total_bytes = 16u << 20;
    std::chrono::seconds idle_timeout{60};
  };
  explicit Block1Transfers(Limits limits) : limits_(limits) {}

  // One block. `endpoint`: the remote endpoint's bytes; `request`: what else identifies the
  // transfer (path, query, Content-Format, Request-Tag); `size1`: the Size1 option, if any.
  BlockResult add(std::string_view endpoint, std::string_view request, Block1 block, std::optional<std::size_t> size1,
                  std::string_view payload, Clock::time_point now);
  // Drops transfers idle for longer than the timeout (add() calls it too).
  void expire(Clock::time_point now);

  std::size_t transfers() const noexcept { return transfers_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }  // buffer capacity held, over all transfers

 private:
  struct Transfer {
    std::string endpoint;
    std::string body;
    std::size_t accounted = 0;  // body's capacity as counted in bytes_ (a moved-from body has none)
    Clock::time_point last_seen;
  };
  void erase(std::unordered_map<std::string, Transfer>::iterator at);

  Limits limits_;
  std::unordered_map<std::string, Transfer> transfers_;  // key: endpoint + '\0' + request
  std::unordered_map<std::string, std::size_t> per_endpoint_;
  std::size_t bytes_ = 0;
  Clock::time_point next_scan_{};
};

}  // namespace telegate::gateway::coap
