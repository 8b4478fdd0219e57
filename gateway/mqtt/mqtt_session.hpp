// The MQTT session layer's socket-free parts: what the spec calls the Session (state that
// outlives one network connection: QoS 1/2 packet identifiers not yet finished) and the
// per-connection rules that need no socket (topic schemes, topic aliases). The Boost.Asio
// connection in mqtt_listener.cpp drives them; keeping them here makes them unit-testable.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mqtt/mqtt_packet.hpp"

namespace telegate::gateway::mqtt {

// A topic scheme such as "{tenant}/{device_id}/{type}" (the default) or a device type's own
// "owntracks/+/{device_id}". Levels: a literal; {device_id}, which must be the authenticated
// device; {tenant}, which must be its tenant; any other {name} or "+" (exactly one level,
// anything); "#" as the last level (the rest, possibly nothing). A scheme must name
// {device_id}: a topic is how a device says who it is, and it may only say the truth.
// Lifecycle: compiled once (config, or a catalog version), then read-only on any thread.
class TopicScheme {
 public:
  static std::expected<TopicScheme, std::string> compile(std::string_view text);

  enum class Match : std::uint8_t { ok, no_match, other_device, other_tenant };
  // Never allocates: it runs for every PUBLISH.
  Match match(std::string_view topic, std::string_view tenant, std::string_view device_id) const noexcept;
  const std::string& text() const noexcept { return text_; }

 private:
  enum class Kind : std::uint8_t { literal, tenant, device_id, any_level, rest };
  struct Level {
    Kind kind = Kind::literal;
    std::string literal;
  };
  std::string text_;
  std::vector<Level> levels_;
};

// MQTT 5 topic aliases a client sets (section 3.3.2.3.4): alias → topic, per connection.
// Lifecycle: one per connection, on its I/O thread; the table is allocated on first use so
// that idle connections cost nothing.
class TopicAliases {
 public:
  explicit TopicAliases(std::uint16_t maximum) noexcept : maximum_(maximum) {}
  // The PUBLISH's effective topic: `topic` (remembered under `alias` when one is given) or, for
  // an empty topic, the one `alias` stands for. 0x94 Topic Alias invalid when the alias is above
  // the maximum we announced, or unknown with an empty topic; 0x82 for an empty topic without alias.
  // The view lives until the alias is set again.
  std::expected<std::string_view, ReasonCode> resolve(std::string_view topic, std::optional<std::uint16_t> alias);

 private:
  std::uint16_t maximum_;
  std::vector<std::string> topics_;  // index alias-1
};

// Implemented by the live connection a ClientState is attached to. Called from sink threads:
// implementations post to their own I/O thread.
class Attachment {
 public:
  virtual ~Attachment() = default;
  // Packets became durable: their answers may go out; take them with ClientState::take_ready().
  // Called once per drain, not per packet: a Kafka commit completes a window's worth of
  // PUBLISHes of one connection at once, and one wake-up and one write answer them all.
  virtual void committed() = 0;
  // Another connection with the same client identifier took the session over (v5 0x8E).
  virtual void taken_over() = 0;
};

// The QoS 1/2 PUBLISHes a client sent and we have not finished, by packet identifier. This is
// what makes a resent PUBLISH (after a lost ack or a reconnect) not reach Kafka twice: an id
// still in the pipeline or already committed is acknowledged, never ingested again.
//
// Lifecycle: shared by the session store (for clean_start=false sessions, across connections)
// and the attached connection; sink completions reach it from sink threads. Thread-safe (one
// mutex, never held while calling out).
class ClientState {
 public:
  enum class Arrival : std::uint8_t {
    fresh,        // new: ingest it (now registered as in the pipeline)
    in_pipeline,  // the same id is still in the pipeline: its completion answers it
    committed,    // already durable: answer at once without ingesting again
  };
  Arrival on_publish(std::uint16_t id, QoS qos);

  // The pipeline's completion for `id`: durable → committed, else forgotten (a resend is then
  // ingested afresh). A durable one is queued for the attached connection, if any, which is
  // told (Attachment::committed) unless it has been told already and not yet drained.
  void on_ingested(std::uint16_t id, bool durable);
  // What the attached connection `owner` is to answer now: the ids queued since its last drain
  // that are still committed, with their QoS (a QoS 1 entry is finished and removed, a QoS 2
  // one stays until PUBREL), appended to `out`. Nothing for a connection no longer attached.
  void take_ready(const Attachment* owner, std::vector<std::pair<std::uint16_t, QoS>>& out);

  // The connection answers `id`: the QoS of a committed entry (a QoS 1 entry is then finished
  // and removed; a QoS 2 one stays until PUBREL), nullopt when it is not committed.
  std::optional<QoS> take_committed(std::uint16_t id);
  // Records `id` as answered without the pipeline (a 3.1.1 QoS 2 message acknowledged as dropped).
  void mark_committed(std::uint16_t id, QoS qos);
  // A refused PUBLISH leaves no trace.
  void forget(std::uint16_t id);
  // PUBREL: true when `id` was a committed QoS 2 entry (removed now); false: unknown (0x92).
  bool on_pubrel(std::uint16_t id);

  std::size_t size() const;

  void attach(std::weak_ptr<Attachment> owner);
  // Detaches `owner` if it is still the attached connection (a takeover may have replaced it).
  void detach(const Attachment* owner);
  std::shared_ptr<Attachment> owner() const;

 private:
  enum class Stage : std::uint8_t { in_pipeline, committed };
  struct Entry {
    QoS qos = QoS::at_least_once;
    Stage stage = Stage::in_pipeline;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::uint16_t, Entry> entries_;
  std::weak_ptr<Attachment> owner_;
  std::vector<std::uint16_t> ready_;  // durable since the owner's last take_ready()
  bool owner_told_ = false;           // committed() called and not yet drained
};

// Sessions by key ("<tenant>/<device id>/<client id>": a client identifier names a session only
// within its device's credentials, so one device cannot take over another's session).
// Lifecycle: one per listener; any I/O thread (one mutex). Expired sessions are swept lazily on
// attach, at most once per sweep interval.
class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;

  struct Attached {
    std::shared_ptr<ClientState> state;
    bool session_present = false;            // an earlier connection's state continues
    std::shared_ptr<Attachment> taken_from;  // the connection that held the session until now
  };
  Attached attach(const std::string& key, bool clean_start, const std::shared_ptr<Attachment>& owner,
                  Clock::time_point now = Clock::now());
  // The connection closed: its state stays for `expiry` (0: forgotten now), unless another
  // connection holds the session by now.
  void detach(const std::string& key, const Attachment* owner, std::chrono::seconds expiry,
              Clock::time_point now = Clock::now());
  std::size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<ClientState> state;
    std::optional<Clock::time_point> expires;  // unset while a connection holds it
  };
  void sweep_locked(Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> sessions_;
  Clock::time_point next_sweep_{};
};

// At most one log line per `interval` for a class of per-message problems, so that a
// misbehaving fleet cannot flood the log; the lines say how many were suppressed.
// Lifecycle: per I/O thread, not thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval = std::chrono::seconds(1)) noexcept : interval_(interval) {}
  // True when a line may be written now; `suppressed` receives how many were skipped before it.
  bool allow(std::chrono::steady_clock::time_point now, std::size_t& suppressed) noexcept;

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point next_{};
  std::size_t suppressed_ = 0;
};

}  // namespace telegate::gateway::mqtt
