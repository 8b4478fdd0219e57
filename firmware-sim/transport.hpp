// The seam between what a simulated device sends and how it travels. A transport (HTTP today;
// MQTT and CoAP later) only turns a Batch into bytes on its wire and the answer into an
// Outcome; pacing, retries, statistics and the devices themselves are shared (load_driver.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::sim {

using Clock = std::chrono::steady_clock;

// How the gateway acknowledges a profile's requests.
enum class ReplyStyle {
  telegate,  // {"accepted":N,"rejected":M,"msg_ids":[…]} (docs: gateway/README.md)
  native,    // the app's own success reply (OwnTracks `[]`): a 2xx means every record was taken
};

// How an HTTP device authenticates and where it posts (a device type's `http` route).
enum class HttpAuth { bearer, basic, path_token };
enum class HttpPayload { body, query };  // query: a GET whose query string is the form

// What a device profile looks like on the wire; immutable, one per profile (payloads.hpp).
struct WireFormat {
  std::string_view content_type;
  ReplyStyle reply = ReplyStyle::telegate;
  // HTTP binding; other transports ignore it.
  std::string_view http_path;  // empty: the --url path (the common /v1/telemetry route)
  HttpAuth http_auth = HttpAuth::bearer;
  HttpPayload http_payload = HttpPayload::body;
};

// One send: a device's records encoded by its profile. Built by the load driver, resent
// unchanged on a retry (same msg_ids, so the gateway de-duplicates a batch that did commit).
struct Batch {
  std::size_t device = 0;  // index in the fleet
  std::string device_id;
  std::string token;
  const WireFormat* format = nullptr;
  std::string body;
  std::size_t records = 0;
  // Record i's msg_id is "<msg_id_prefix>-<first_sequence + i>"; empty when the profile sends
  // none (the gateway makes them). For transports whose ack names no msg_ids (MQTT, CoAP).
  std::string msg_id_prefix;
  std::uint64_t first_sequence = 0;
};

enum class OutcomeKind { answered, connect_error, write_error, read_error, timeout };

// What became of one send, reported on the load driver's thread.
struct Outcome {
  OutcomeKind kind = OutcomeKind::answered;
  unsigned status = 0;  // answered: the protocol's status as an HTTP code (a CoAP 5.03 is 503)
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  // The msg_ids the answer acknowledged; views into the transport's receive buffer, valid
  // until the callback returns.
  std::vector<std::string_view> acknowledged;
  Clock::duration latency{};  // send to answer
  // How long the answer asked the device to wait before a retry (CoAP Max-Age); the retry
  // waits at least this, and at least the policy's backoff.
  Clock::duration retry_after{};
};

// "200", "503", "connect_error", …: how outcomes are counted and named in the summary.
std::string outcome_name(const Outcome& outcome);

// One connection (or session) to the gateway, owned by one load-driver lane and used only on
// the io_context thread. A channel connects lazily on the first send and after a failure.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends the batch and calls `done` once, on the io_context thread. The batch outlives the call.
  virtual void send(const Batch& batch, std::function<void(const Outcome&)> done) = 0;
  // Closes the connection politely when the lane has nothing more to send.
  virtual void close() = 0;
};

}  // namespace telegate::sim
