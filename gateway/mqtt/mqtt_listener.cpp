#include "mqtt/mqtt_listener.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <thread>
#include <unordered_set>

#include "mqtt/mqtt_packet.hpp"
#include "mqtt/mqtt_session.hpp"
#include "src/connection_limiter.hpp"
#include "src/tcp_acceptor.hpp"
#include "src/tls_context.hpp"
#include "telegate/gateway/catalog.hpp"

namespace telegate::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

namespace {

// Reads go into the thread's buffer of this size; a connection keeps a copy of an unread rest
// only while it is held back mid-buffer (overload retry, Receive Maximum), so this is also the
// most a held-back connection holds besides one partial packet.
constexpr std::size_t kReadBufferBytes = 16u << 10;
// A TLS connection's own read buffer: OpenSSL already holds its records, this only needs to
// take one MQTT packet's worth at a time.
constexpr std::size_t kTlsReadBufferBytes = 4u << 10;
// A client that does not read its acks is not read either once this much waits to be written.
constexpr std::size_t kWriteBacklogBytes = 64u << 10;
constexpr std::chrono::milliseconds kOverloadRetry{100};
constexpr std::size_t kReasonStringBytes = 256;

// A Reason String is optional and must be UTF-8: device-supplied text in pipeline messages is
// cut at the first byte that would make the packet unencodable.
std::string reason_text(std::string_view message) {
  message = message.substr(0, kReasonStringBytes);
  if (auto bad = mqtt::find_invalid_utf8(message)) message = message.substr(0, *bad);
  return std::string(message);
}

ReasonCode publish_refusal(IngestStatus status) {
  switch (status) {
    case IngestStatus::forbidden: return ReasonCode::not_authorized;
    case IngestStatus::too_large: return ReasonCode::quota_exceeded;
    // 0x95 Packet too large is not a PUBACK/PUBREC reason (MQTT 5 §3.4.2.1), only a DISCONNECT
    // one, and disconnecting would make the client resend it forever; 0x83 is "valid, but the
    // receiver is not willing to accept it", with the limit in the Reason String.
    case IngestStatus::record_too_large: return ReasonCode::implementation_specific_error;
    case IngestStatus::unsupported_media_type:
    case IngestStatus::malformed:
    case IngestStatus::all_rejected: return ReasonCode::payload_format_invalid;
    default: return ReasonCode::implementation_specific_error;
  }
}

std::string first_errors(const IngestOutcome& outcome) {
  if (!outcome.message.empty()) return outcome.message;
  std::string text;
  for (const codecs::FieldError& error : outcome.errors) {
    if (text.size() > kReasonStringBytes) break;
    text += (text.empty() ? "record " : "; record ") + std::to_string(error.index) + " " + error.field + ": " + error.reason;
  }
  return text;
}

std::atomic<std::uint64_t> assigned_ids_{0};  // for v5 clients connecting without a client id

// The protocol level a CONNECT that failed to decode asked for, to answer in its own version.
ProtocolVersion claimed_version(const mqtt::Frame& frame) noexcept {
  return frame.body.size() > 6 && frame.body[6] == 5 ? ProtocolVersion::v5 : ProtocolVersion::v311;
}

}  // namespace

// A device type as MQTT sees it: its topic scheme and default content type. Built by a worker
// for one catalog version of the type; shared read-only by that worker's connections.
struct TypeRoute {
  std::shared_ptr<const DeviceTypeVersion> version;
  mqtt::TopicScheme scheme;
  std::string content_type;
};

struct MqttListener::Counters {
  explicit Counters(prometheus::Registry& registry)
      : connections(prometheus::BuildGauge()
                        .Name("telegate_mqtt_connections")
                        .Help("MQTT network connections open (CONNECT received or not)")
                        .Register(registry)
                        .Add({})),
        connects(prometheus::BuildCounter()
                     .Name("telegate_mqtt_connects_total")
                     .Help("CONNECTs answered, by CONNACK reason")
                     .Register(registry)),
        disconnects(prometheus::BuildCounter()
                        .Name("telegate_mqtt_disconnects_total")
                        .Help("Connections closed, by reason")
                        .Register(registry)),
        dropped(prometheus::BuildCounter()
                    .Name("telegate_mqtt_dropped_total")
                    .Help("PUBLISHes not written that the client could not be told about (QoS 0, MQTT 3.1.1), by reason")
                    .Register(registry)),
        sessions(prometheus::BuildGauge()
                     .Name("telegate_mqtt_sessions")
                     .Help("MQTT sessions held (connected, or kept for clean_start=false clients)")
                     .Register(registry)
                     .Add({})) {}

  prometheus::Counter* acked_counter = nullptr;  // PUBACK/PUBREC success: telegate_requests_total{status="0"}

  void count(prometheus::Family<prometheus::Counter>& family, std::string_view reason) {
    family.Add({{"reason", std::string(reason)}}).Increment();
  }

  prometheus::Gauge& connections;
  prometheus::Family<prometheus::Counter>& connects;
  prometheus::Family<prometheus::Counter>& disconnects;
  prometheus::Family<prometheus::Counter>& dropped;
  prometheus::Gauge& sessions;
};

struct MqttListener::Worker {
  asio::io_context io{1};
  // Keeps run() going once the acceptors are closed and no connection is left: stop() still
  // posts the shutdown round to this thread, and only io.stop() ends it.
  asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
  std::optional<tcp::acceptor> acceptor;
  std::optional<tcp::acceptor> tls_acceptor;  // with mqtt.tls
  std::unique_ptr<PipelineWorker> pipeline;
  std::array<std::uint8_t, kReadBufferBytes> read_buffer{};
  // Connections waiting for resume(). Owned here: a parked connection has no pending read to
  // keep it alive.
  std::vector<std::shared_ptr<MqttConnection>> parked;
  std::unordered_set<MqttConnection*> live;  // for the shutdown DISCONNECT
  std::unordered_map<std::string, std::shared_ptr<const TypeRoute>> routes;  // by device type name
  // answer_ready()'s list of (packet id, QoS), reused so that answering allocates nothing.
  std::vector<std::pair<std::uint16_t, QoS>> ready_scratch;
  mqtt::LogLimiter log_limiter;
  std::thread thread;
};

// One network connection, plain or TLS (`tls_`, layered over socket_). Owned by shared_ptrs
// held by its pending operations (socket wait or TLS read, timer, write, pipeline completions)
// and, while parked, by its Worker; runs only on its Worker's thread — pipeline completions and
// takeovers are posted there. Holds its place in the listener's connection caps until destroyed.
class MqttConnection final : public mqtt::Attachment, public std::enable_shared_from_this<MqttConnection> {
 public:
  MqttConnection(tcp::socket socket, MqttListener& listener, MqttListener::Worker& worker, ConnectionLimiter::Slot slot,
                 std::shared_ptr<asio::ssl::context> tls_context)
      : socket_(std::move(socket)),
        tls_context_(std::move(tls_context)),
        timer_(worker.io),
        listener_(listener),
        worker_(worker),
        config_(listener.context_.config.mqtt),
        reader_(config_.max_packet_size),
        aliases_(config_.topic_alias_maximum),
        slot_(std::move(slot)) {
    if (tls_context_) {
      tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls_context_);
      tls_buffer_.resize(kTlsReadBufferBytes);
    }
  }

  // TLS: the handshake first, within mqtt.tls.handshake_timeout_s; then CONNECT within
  // mqtt.connect_timeout_s. A verified client certificate names the device (docs/security.md).
  void start() {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
    socket_.set_option(tcp::no_delay(true), ignored);
    worker_.live.insert(this);
    listener_.counters_->connections.Increment();
    last_activity_ = Clock::now();
    if (!tls_) {
      arm_timer(last_activity_ + config_.connect_timeout);
      return read();
    }
    handshaking_ = true;
    arm_timer(last_activity_ + config_.tls.handshake_timeout);
    tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](boost::system::error_code error) {
      self->handshaking_ = false;
      if (self->phase_ >= Phase::closing) return;
      if (error) {
        self->listener_.limiter_->refused_tls_handshake();
        self->listener_.counters_->count(self->listener_.counters_->disconnects, "tls_handshake");
        spdlog::debug("mqtt: TLS handshake failed: {}", error.message());
        self->phase_ = Phase::closing;
        return self->close_socket();
      }
      self->peer_identity_ = verified_peer_identity(self->tls_->native_handle());
      self->last_activity_ = Clock::now();
      self->arm_timer(self->last_activity_ + self->config_.connect_timeout);
      self->read();
    });
  }

  // Takes reading up again after resume() (worker thread).
  void unpark() {
    parked_ = false;
    read();
  }

  // The gateway is stopping (worker thread).
  void shutdown() {
    will_.reset();  // the device did nothing wrong: no "gone" message for it
    disconnect(ReasonCode::server_shutting_down, "the gateway is shutting down", false);
  }

  void committed() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->answer_ready(); });
  }

  void taken_over() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->disconnect(ReasonCode::session_taken_over,
                       "another connection with the same client identifier took the session over", true);
    });
  }

 private:
  enum class Phase : std::uint8_t { awaiting_connect, connected, closing, closed };

  struct Will {
    std::string topic;
    std::string payload;
    std::string content_type;
  };

  // A PUBLISH the pipeline refused as overloaded, tried again after kOverloadRetry while the
  // connection is not read (so the device's unacknowledged window is what waits, not memory).
  struct Retry {
    QoS qos = QoS::at_most_once;
    std::uint16_t id = 0;
    std::string topic;
    std::string payload;
    std::string content_type;
  };

  const ProtocolMetrics& metrics() const {
    return listener_.context_.metrics.protocol(envelope::SourceProtocol::mqtt);
  }

  // ---- reading

  bool held_back() const {
    if (listener_.paused_ || listener_.stopping_ || retry_) return true;
    if (out_.size() + writing_.size() > kWriteBacklogBytes) return true;
    // A 3.1.1 client has no Receive Maximum to obey: not reading is how it is made to.
    return version_ == ProtocolVersion::v311 && unacked_ >= config_.receive_maximum;
  }

  void read() {
    if (phase_ >= Phase::closing || waiting_ || parked_) return;
    if (held_back()) {
      if (listener_.paused_ && !listener_.stopping_) {
        parked_ = true;
        worker_.parked.push_back(shared_from_this());
      }
      return;  // the event that releases it (ack, write, retry, resume) calls read() again
    }
    if (!pending_input_.empty()) {
      const std::vector<std::uint8_t> rest = std::move(pending_input_);
      pending_input_.clear();
      process(rest);
      return read();
    }
    waiting_ = true;
    if (tls_) {
      tls_->async_read_some(asio::buffer(tls_buffer_),
                            [self = shared_from_this()](boost::system::error_code error, std::size_t size) {
                              self->waiting_ = false;
                              self->on_tls_read(error, size);
                            });
      return;
    }
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code error) {
      self->waiting_ = false;
      self->on_readable(error);
    });
  }

  // TLS: the bytes are out of the kernel already, so a held-back connection keeps them (one
  // buffer at most: no read is started while held back).
  void on_tls_read(boost::system::error_code error, std::size_t size) {
    if (phase_ >= Phase::closing) return;
    if (error) {
      return lost(error == asio::error::eof || error == asio::ssl::error::stream_truncated
                      ? (reader_.mid_frame() ? "closed in the middle of a packet" : "closed by the client")
                      : "TLS error: " + error.message());
    }
    last_activity_ = Clock::now();
    if (held_back()) {
      pending_input_.insert(pending_input_.end(), tls_buffer_.begin(), tls_buffer_.begin() + static_cast<std::ptrdiff_t>(size));
      return read();
    }
    process(mqtt::Bytes(tls_buffer_.data(), size));
    read();
  }

  void on_readable(boost::system::error_code error) {
    if (phase_ >= Phase::closing) return;
    if (error) return lost("socket error: " + error.message());
    if (held_back()) return read();  // the bytes stay in the kernel: TCP pushes back on the device
    const std::size_t size = socket_.read_some(asio::buffer(worker_.read_buffer), error);
    if (error == asio::error::would_block || error == asio::error::try_again) return read();
    if (error) {
      return lost(error == asio::error::eof ? (reader_.mid_frame() ? "closed in the middle of a packet" : "closed by the client")
                                            : "socket error: " + error.message());
    }
    last_activity_ = Clock::now();
    process(mqtt::Bytes(worker_.read_buffer.data(), size));
    read();
  }

  void process(mqtt::Bytes input) {
    while (!input.empty() && phase_ < Phase::closing) {
      if (retry_ || (version_ == ProtocolVersion::v311 && unacked_ >= config_.receive_maximum)) {
        pending_input_.assign(input.begin(), input.end());
        return;
      }
      if (phase_ == Phase::awaiting_connect && !reader_.mid_frame() && input.front() != 0x10) {
        // Not MQTT at all (or not starting with CONNECT): no need to wait for a frame's end.
        return protocol_failure(mqtt::PacketError{mqtt::MqttErrc::protocol_error, ReasonCode::protocol_error,
                                                  "the first packet must be CONNECT", 0});
      }
      auto step = reader_.read(input);
      if (!step) return protocol_failure(step.error());
      input = input.subspan(step->consumed);
      if (step->frame) handle(*step->frame);
    }
  }

  void protocol_failure(const mqtt::PacketError& error) {
    if (phase_ == Phase::awaiting_connect) return refuse_connect(error.reason, error.message, ProtocolVersion::v311);
    disconnect(error.reason, error.message, true);
  }

  void handle(const mqtt::Frame& frame) {
    if (phase_ == Phase::awaiting_connect) {
      auto connect = mqtt::decode_connect(frame);
      if (!connect) return refuse_connect(connect.error().reason, connect.error().message, claimed_version(frame));
      return on_connect(*connect);
    }
    auto packet = mqtt::decode_packet(frame, version_);
    if (!packet) return disconnect(packet.error().reason, packet.error().message, true);
    std::visit([this](auto& decoded) { on_packet(decoded); }, *packet);
  }

  // ---- CONNECT

  void refuse_connect(ReasonCode reason, std::string_view message, ProtocolVersion version) {
    version_ = version;
    listener_.counters_->count(listener_.counters_->connects, mqtt::to_string(reason));
    log_problem("mqtt: CONNECT refused ({}): {}", mqtt::to_string(reason), message);
    // 3.1.1 has return codes only for these; anything else (a malformed CONNECT) is just closed.
    const bool v3_code = reason == ReasonCode::unsupported_protocol_version ||
                         reason == ReasonCode::client_identifier_not_valid ||
                         reason == ReasonCode::bad_username_or_password || reason == ReasonCode::not_authorized ||
                         reason == ReasonCode::server_unavailable;
    if (version_ == ProtocolVersion::v5 || v3_code) {
      mqtt::Connack connack{false, reason, {}};
      const std::string text = reason_text(message);
      if (request_problem_information_) connack.properties.reason_string = text;
      if (!mqtt::encode(connack, version_, out_, client_max_packet_size_)) {
        connack.properties.reason_string.reset();
        (void)mqtt::encode(connack, version_, out_, client_max_packet_size_);
      }
    }
    close_after_write(message);
  }

  void on_connect(const mqtt::Connect& connect) {
    version_ = connect.version;
    client_max_packet_size_ = connect.properties.maximum_packet_size.value_or(mqtt::kMaxPacketSizeLimit);
    request_problem_information_ = connect.properties.request_problem_information.value_or(1) != 0;
    const ListenerContext& context = listener_.context_;
    if (listener_.stopping_) return refuse_connect(ReasonCode::server_unavailable, "the gateway is shutting down", version_);
    if (connect.properties.authentication_method) {
      return refuse_connect(ReasonCode::bad_authentication_method,
                            "enhanced authentication is not supported: send username = device id, password = device token",
                            version_);
    }
    const std::shared_ptr<const Catalog> catalog = context.catalog.current();
    // Password = device token; without one, a verified client certificate names the device
    // (then a username, if sent, must still be its id).
    const DeviceIdentity* device = connect.password ? catalog->devices().authenticate(*connect.password) : nullptr;
    if (!connect.password && !peer_identity_.empty()) {
      if (auto entry = catalog->devices().by_psk_identity(peer_identity_)) device = entry->device;
    }
    if (!device || (connect.username ? *connect.username != device->device_id : connect.password.has_value())) {
      metrics().reject(RejectReason::unauthenticated, 1);
      return refuse_connect(ReasonCode::bad_username_or_password,
                            !connect.password ? "credentials are required: username = device id, password = device token"
                                              : "the username and password match no device",
                            version_);
    }
    device_ = *device;
    catalog_generation_ = catalog->generation();
    route_ = route_for(*catalog);
    if (!route_) {
      return refuse_connect(ReasonCode::not_authorized, "device type '" + device_.device_type + "' is not defined", version_);
    }
    if (connect.will) {
      if (config_.will == MqttWillMode::refuse) {
        return refuse_connect(ReasonCode::not_authorized, "Will messages are not accepted here (mqtt.will: refuse)", version_);
      }
      if (route_->scheme.match(connect.will->topic, device_.tenant, device_.device_id) != mqtt::TopicScheme::Match::ok) {
        return refuse_connect(ReasonCode::not_authorized,
                              "the Will topic '" + reason_text(connect.will->topic) +
                                  "' is not this device's (topic scheme " + route_->scheme.text() + ")",
                              version_);
      }
      will_ = Will{std::string(connect.will->topic), std::string(connect.will->payload),
                   std::string(connect.will->properties.content_type.value_or(route_->content_type))};
    }

    // Keep-alive: a client asking for none, or for more than we allow, gets our maximum (a v5
    // client is told so; a 3.1.1 client cannot be, and is closed after 1.5 × that while silent).
    keep_alive_ = connect.keep_alive == 0 || connect.keep_alive > config_.keep_alive_max_s ? config_.keep_alive_max_s
                                                                                             : connect.keep_alive;
    std::uint32_t expiry = 0;
    bool expiry_cut = false;
    if (version_ == ProtocolVersion::v5) {
      const std::uint32_t asked = connect.properties.session_expiry_interval.value_or(0);
      expiry = std::min(asked, config_.session_expiry_max_s);
      expiry_cut = asked != expiry;
    } else if (!connect.clean_start) {
      expiry = config_.session_expiry_max_s;  // 3.1.1 has no expiry: we bound what we keep
    }
    session_expiry_ = expiry;
    client_id_ = std::string(connect.client_id);
    if (client_id_.empty()) client_id_ = "telegate-" + std::to_string(++assigned_ids_);
    session_key_ = device_.tenant + '/' + device_.device_id + '/' + client_id_;
    const auto attached = listener_.sessions_->attach(session_key_, connect.clean_start, shared_from_this());
    state_ = attached.state;
    listener_.counters_->sessions.Set(static_cast<double>(listener_.sessions_->size()));

    mqtt::Connack connack{attached.session_present, ReasonCode::success, {}};
    if (version_ == ProtocolVersion::v5) {
      auto& p = connack.properties;
      if (expiry_cut) p.session_expiry_interval = expiry;
      p.receive_maximum = config_.receive_maximum;
      p.maximum_packet_size = config_.max_packet_size;
      if (config_.topic_alias_maximum > 0) p.topic_alias_maximum = config_.topic_alias_maximum;
      p.wildcard_subscription_available = false;
      p.subscription_identifiers_available = false;
      p.shared_subscription_available = false;
      if (keep_alive_ != connect.keep_alive) p.server_keep_alive = keep_alive_;
      if (connect.client_id.empty()) p.assigned_client_identifier = client_id_;
    }
    phase_ = Phase::connected;
    listener_.counters_->count(listener_.counters_->connects, "success");
    send(connack);
    arm_timer(last_activity_ + keep_alive_deadline());
  }

  std::shared_ptr<const TypeRoute> route_for(const Catalog& catalog) {
    const DeviceTypeVersion* type = catalog.device_type(device_.device_type);
    if (!type) return nullptr;
    std::shared_ptr<const TypeRoute>& cached = worker_.routes[device_.device_type];
    if (cached && cached->version.get() == type) return cached;
    auto route = std::make_shared<TypeRoute>();
    route->version = catalog.device_type_shared(device_.device_type);
    if (type->definition.mqtt) {
      auto scheme = mqtt::TopicScheme::compile(type->definition.mqtt->topic);
      if (!scheme) return nullptr;  // checked when the type was read; a catalog that changed the rules
      route->scheme = std::move(*scheme);
      route->content_type = type->definition.mqtt->content_type;
    } else {
      route->scheme = *listener_.default_scheme_;
    }
    if (route->content_type.empty()) {
      const auto codec = type->codec->instantiate();
      route->content_type = codec->content_types().empty() ? "application/json" : std::string(codec->content_types()[0]);
    }
    cached = std::move(route);
    return cached;
  }

  // ---- packets after CONNECT

  void on_packet(const mqtt::Connect&) { disconnect(ReasonCode::protocol_error, "a second CONNECT", true); }

  void on_packet(const mqtt::Publish& publish) {
    if (publish.qos != QoS::at_most_once) {
      ++unacked_;
      if (version_ == ProtocolVersion::v5 && unacked_ > config_.receive_maximum) {
        return disconnect(ReasonCode::receive_maximum_exceeded,
                          "more than Receive Maximum (" + std::to_string(config_.receive_maximum) +
                              ") QoS 1/2 PUBLISHes unacknowledged",
                          true);
      }
    }
    std::string_view topic = publish.topic;
    if (version_ == ProtocolVersion::v5) {
      auto resolved = aliases_.resolve(publish.topic, publish.properties.topic_alias);
      if (!resolved) {
        return disconnect(resolved.error(), resolved.error() == ReasonCode::topic_alias_invalid
                                                ? "Topic Alias " + std::to_string(publish.properties.topic_alias.value_or(0)) +
                                                      " is unknown or above the maximum (" +
                                                      std::to_string(config_.topic_alias_maximum) + ")"
                                                : "PUBLISH without topic and without Topic Alias",
                          true);
      }
      topic = *resolved;
    }
    const std::shared_ptr<const Catalog> catalog = listener_.context_.catalog.current();
    if (catalog->generation() != catalog_generation_ && !refresh(*catalog)) return;
    switch (route_->scheme.match(topic, device_.tenant, device_.device_id)) {
      case mqtt::TopicScheme::Match::ok: break;
      case mqtt::TopicScheme::Match::no_match:
        return refuse(publish.qos, publish.packet_id, topic, ReasonCode::not_authorized,
                      "topic '" + reason_text(topic) + "' does not follow the topic scheme " + route_->scheme.text(),
                      "topic", std::nullopt);
      case mqtt::TopicScheme::Match::other_device:
      case mqtt::TopicScheme::Match::other_tenant:
        return refuse(publish.qos, publish.packet_id, topic, ReasonCode::not_authorized,
                      "topic '" + reason_text(topic) + "' is not device " + device_.device_id + "'s", "topic",
                      std::nullopt);
    }
    if (auto format = mqtt::validate_payload_format(publish); !format) {
      return refuse(publish.qos, publish.packet_id, topic, ReasonCode::payload_format_invalid, format.error().message,
                    "payload_format", std::nullopt);
    }
    if (publish.qos != QoS::at_most_once) {
      switch (state_->on_publish(publish.packet_id, publish.qos)) {
        case mqtt::ClientState::Arrival::fresh: break;
        case mqtt::ClientState::Arrival::in_pipeline:
          finished_one();  // its first copy's completion answers both
          return;
        case mqtt::ClientState::Arrival::committed:
          if (publish.qos == QoS::exactly_once) finished_one();  // one PUBCOMP will end both
          return answer_committed(publish.packet_id);
      }
    }
    const std::string_view content_type = publish.properties.content_type.value_or(std::string_view(route_->content_type));
    ingest(*catalog, publish.qos, publish.packet_id, topic, publish.payload, content_type);
  }

  void on_packet(const mqtt::PublishAck& ack) {
    if (ack.type != mqtt::PacketType::pubrel) return;  // we never PUBLISH to clients: nothing to match
    const bool known = state_->on_pubrel(ack.packet_id);
    finished_one();
    mqtt::PublishAck pubcomp{mqtt::PacketType::pubcomp, ack.packet_id,
                             known || version_ == ProtocolVersion::v311 ? ReasonCode::success
                                                                        : ReasonCode::packet_identifier_not_found,
                             {}, {}};
    send(pubcomp);
    read();
  }

  void on_packet(const mqtt::Subscribe& subscribe) {
    // telegate is an ingestion endpoint: there is no downlink to subscribe to.
    mqtt::Suback suback;
    suback.packet_id = subscribe.packet_id;
    suback.reasons.assign(subscribe.subscriptions.size(), version_ == ProtocolVersion::v5
                                                               ? ReasonCode::not_authorized
                                                               : ReasonCode::unspecified_error);
    if (request_problem_information_) suback.reason_string = "telegate only ingests telemetry: nothing to subscribe to";
    send(suback);
  }

  void on_packet(const mqtt::Unsubscribe& unsubscribe) {
    mqtt::Unsuback unsuback;
    unsuback.packet_id = unsubscribe.packet_id;
    if (version_ == ProtocolVersion::v5) {
      unsuback.reasons.assign(unsubscribe.filters.size(), ReasonCode::no_subscription_existed);
    }
    send(unsuback);
  }

  void on_packet(const mqtt::PingReq&) { send(mqtt::PingResp{}); }

  void on_packet(const mqtt::Disconnect& disconnect_packet) {
    if (disconnect_packet.session_expiry_interval) {
      if (session_expiry_ == 0 && *disconnect_packet.session_expiry_interval != 0) {
        return disconnect(ReasonCode::protocol_error, "Session Expiry set on DISCONNECT after 0 in CONNECT", true);
      }
      session_expiry_ = std::min(*disconnect_packet.session_expiry_interval, config_.session_expiry_max_s);
    }
    if (disconnect_packet.reason != ReasonCode::disconnect_with_will) will_.reset();
    listener_.counters_->count(listener_.counters_->disconnects, "client");
    finish("DISCONNECT from the client");
  }

  void on_packet(const mqtt::Auth&) {
    disconnect(ReasonCode::protocol_error, "AUTH without enhanced authentication in CONNECT", true);
  }

  // The catalog changed since the last PUBLISH: the device may have been deleted (its token
  // revoked) or its type changed.
  bool refresh(const Catalog& catalog) {
    catalog_generation_ = catalog.generation();
    const auto entry = catalog.devices().by_psk_identity(device_.tenant + '/' + device_.device_id);
    if (!entry || !entry->device || entry->device->device_type != device_.device_type) {
      disconnect(ReasonCode::not_authorized, "the device's credentials were revoked or its type changed", false);
      return false;
    }
    route_ = route_for(catalog);
    if (!route_) {
      disconnect(ReasonCode::not_authorized, "device type '" + device_.device_type + "' is not defined any more", false);
      return false;
    }
    return true;
  }

  // ---- into the pipeline

  void ingest(const Catalog& catalog, QoS qos, std::uint16_t id, std::string_view topic, std::string_view payload,
              std::string_view content_type) {
    ++listener_.in_flight_;
    auto state = state_;
    auto immediate = worker_.pipeline->ingest(
        IngestRequest{catalog, device_, content_type, payload, envelope::SourceProtocol::mqtt},
        // Weak: the last reference must not drop on a sink thread; the ack itself is routed
        // through the session state to whichever connection holds the session by then.
        [weak = weak_from_this(), &listener = listener_, state, qos, id](IngestOutcome outcome) {
          --listener.in_flight_;
          const bool durable =
              outcome.status == IngestStatus::accepted || outcome.status == IngestStatus::partially_accepted;
          if (!durable || !outcome.errors.empty()) {
            if (auto self = weak.lock()) {
              asio::post(self->socket_.get_executor(), [self, outcome = std::move(outcome), qos, id] {
                self->note_partial_or_failed(outcome, qos, id);
              });
            }
          }
          if (qos != QoS::at_most_once) state->on_ingested(id, durable);
        });
    if (!immediate) return;
    --listener_.in_flight_;
    const IngestOutcome& outcome = *immediate;
    switch (outcome.status) {
      case IngestStatus::accepted:  // nothing to write (a status message): done
        if (qos != QoS::at_most_once) state_->on_ingested(id, true);
        return;
      case IngestStatus::quota_exceeded:
        // MQTT 5 can say so on the PUBACK/PUBREC (0x97 Quota exceeded) and the client decides;
        // QoS 0 and MQTT 3.1.1 cannot, so they are paced like an overload below.
        if (version_ == ProtocolVersion::v5 && qos != QoS::at_most_once) {
          return refuse(qos, id, topic, ReasonCode::quota_exceeded, outcome.message, "quota_exceeded", outcome.status);
        }
        [[fallthrough]];
      case IngestStatus::overloaded: {
        // Not an answer the device can act on (any PUBACK is final): hold this PUBLISH and stop
        // reading until the budget has room again.
        retry_ = Retry{qos, id, std::string(topic), std::string(payload), std::string(content_type)};
        arm_retry();
        return;
      }
      case IngestStatus::sink_failed:
        if (qos != QoS::at_most_once) state_->forget(id);
        return disconnect(ReasonCode::server_busy, outcome.message + "; resend", false);
      default:
        return refuse(qos, id, topic, publish_refusal(outcome.status), first_errors(outcome), "", outcome.status);
    }
  }

  void arm_retry() {
    if (!retry_timer_) retry_timer_ = std::make_unique<asio::steady_timer>(worker_.io);
    retry_timer_->expires_after(kOverloadRetry);
    retry_timer_->async_wait([self = shared_from_this()](boost::system::error_code error) {
      if (error || self->phase_ >= Phase::closing || !self->retry_) return;
      Retry retry = std::move(*self->retry_);
      self->retry_.reset();
      const auto catalog = self->listener_.context_.catalog.current();
      self->last_activity_ = Clock::now();
      self->ingest(*catalog, retry.qos, retry.id, retry.topic, retry.payload, retry.content_type);
      self->read();
    });
  }

  // Per-record rejections in an otherwise accepted PUBLISH, and sink failures: the metrics are
  // the pipeline's; this says which device and topic in the log.
  void note_partial_or_failed(const IngestOutcome& outcome, QoS qos, std::uint16_t id) {
    if (outcome.status == IngestStatus::record_too_large) {
      // Kafka itself refused a record (the topic's limit is below the gateway's): as final as
      // the refusal before produce, so answered the same way (the topic is not kept this late).
      if (phase_ == Phase::connected) {
        refuse(qos, id, "", publish_refusal(outcome.status), outcome.message, "", outcome.status);
      }
      return;
    }
    if (outcome.status == IngestStatus::sink_failed) {
      log_problem("mqtt: device {}: records not durable: {}", device_.device_id, outcome.message);
      // The ack is withheld (ClientState forgot the ids); closing makes the client resend.
      if (phase_ == Phase::connected) disconnect(ReasonCode::server_busy, "records not durable; resend", false);
      return;
    }
    log_problem("mqtt: device {}: {} record(s) rejected, {} accepted: {}", device_.device_id, outcome.errors.size(),
                outcome.accepted, first_errors(outcome));
  }

  // A PUBLISH that will not be written. MQTT 5 answers QoS 1/2 with the reason; MQTT 3.1.1 has
  // no negative ack, and closing would only make the client resend the same refused message
  // forever, so it is acknowledged as dropped — counted and logged, never silently.

  void refuse(QoS qos, std::uint16_t id, std::string_view topic, ReasonCode reason, const std::string& message,
              std::string_view metric, std::optional<IngestStatus> pipeline_status) {
    if (!pipeline_status) metrics().reject(reason == ReasonCode::not_authorized ? RejectReason::forbidden : RejectReason::decode, 1);
    metrics().requests_with_status(static_cast<int>(reason)).Increment();
    const std::string_view label = metric.empty() ? std::string_view(mqtt::to_string(reason)) : metric;
    if (qos == QoS::at_most_once || version_ == ProtocolVersion::v311) listener_.counters_->count(listener_.counters_->dropped, label);
    log_problem("mqtt: device {}: PUBLISH to '{}' (QoS {}) refused: {}", device_.device_id, reason_text(topic),
                static_cast<int>(qos), message);
    if (qos == QoS::at_most_once) return;
    if (version_ == ProtocolVersion::v311) {
      // Acknowledged as dropped; for QoS 2 the id stays until PUBREL, so a resend is answered
      // with PUBREC rather than refused again.
      if (qos == QoS::at_least_once) {
        state_->forget(id);
        finished_one();
        send(mqtt::PublishAck{mqtt::PacketType::puback, id, ReasonCode::success, {}, {}});
      } else {
        state_->mark_committed(id, qos);
        send(mqtt::PublishAck{mqtt::PacketType::pubrec, id, ReasonCode::success, {}, {}});
      }
      return read();
    }
    state_->forget(id);
    finished_one();
    mqtt::PublishAck ack{qos == QoS::at_least_once ? mqtt::PacketType::puback : mqtt::PacketType::pubrec, id, reason, {}, {}};
    const std::string text = reason_text(message);
    if (request_problem_information_) ack.reason_string = text;
    send(ack);
    read();
  }

  // A resent PUBLISH whose first copy is durable already: PUBACK, or PUBREC.
  void answer_committed(std::uint16_t id) {
    if (phase_ != Phase::connected) return;  // the state keeps it: a resend after reconnect is answered then
    const auto qos = state_->take_committed(id);
    if (!qos) return;
    queue_success(id, *qos);
    listener_.counters_->acked_counter->Increment();
    flush();
    read();
  }

  // Everything the pipeline made durable since the last call, answered in one write: a commit
  // completes many PUBLISHes of a connection at once.
  void answer_ready() {
    if (phase_ != Phase::connected) return;  // the state keeps them: a resend after reconnect is answered then
    auto& ready = worker_.ready_scratch;
    ready.clear();
    state_->take_ready(this, ready);
    if (ready.empty()) return;
    for (const auto& [id, qos] : ready) queue_success(id, qos);
    listener_.counters_->acked_counter->Increment(static_cast<double>(ready.size()));
    flush();
    read();
  }

  void queue_success(std::uint16_t id, QoS qos) {
    if (qos == QoS::at_least_once) finished_one();
    queue(mqtt::PublishAck{qos == QoS::at_least_once ? mqtt::PacketType::puback : mqtt::PacketType::pubrec, id,
                           ReasonCode::success, {}, {}});
  }

  void finished_one() {
    if (unacked_ > 0) --unacked_;
  }

  // ---- writing and closing

  template <class Packet>
  void send(const Packet& packet) {
    queue(packet);
    flush();
  }

  // Encodes `packet` after what waits to be written; flush() writes it.
  template <class Packet>
  void queue(const Packet& packet) {
    if (phase_ >= Phase::closing) return;
    if (auto written = mqtt::encode(packet, version_, out_, client_max_packet_size_); !written) {
      // Not answering would leave the client waiting for this ack for ever; once closed, it
      // reconnects and resends, and the resend is answered from the session state.
      disconnect(ReasonCode::implementation_specific_error, "cannot encode an answer: " + written.error().message,
                 true);
    }
  }

  void flush() {
    if (write_in_flight_ || out_.empty()) return;
    writing_.swap(out_);
    write_in_flight_ = true;
    auto written = [self = shared_from_this()](boost::system::error_code error, std::size_t) {
      self->write_in_flight_ = false;
      self->writing_.clear();
      if (error) return self->lost("write failed: " + error.message());
      if (self->phase_ == Phase::closing && self->out_.empty()) return self->close_socket();
      self->flush();
      self->read();
    };
    if (tls_) return asio::async_write(*tls_, asio::buffer(writing_), std::move(written));
    asio::async_write(socket_, asio::buffer(writing_), std::move(written));
  }

  // Server-initiated end: v5 gets a DISCONNECT with the reason (3.1.1 has none: just closed).
  // `with_will`: the connection ended abnormally, so the Will goes out (if any).
  void disconnect(ReasonCode reason, std::string_view message, bool protocol_problem) {
    if (phase_ >= Phase::closing) return;
    listener_.counters_->count(listener_.counters_->disconnects, mqtt::to_string(reason));
    if (protocol_problem) {
      log_problem("mqtt: device {}: disconnected ({}): {}", device_.device_id.empty() ? "(none)" : device_.device_id,
                  mqtt::to_string(reason), message);
    } else {
      spdlog::debug("mqtt: device {}: disconnected ({}): {}", device_.device_id, mqtt::to_string(reason), message);
    }
    if (version_ == ProtocolVersion::v5 && phase_ == Phase::connected) {
      mqtt::Disconnect packet;
      packet.reason = reason;
      const std::string text = reason_text(message);
      packet.reason_string = text;
      (void)mqtt::encode(packet, version_, out_, client_max_packet_size_);
    }
    publish_will();
    close_after_write(message);
  }

  void lost(std::string_view why) {
    if (phase_ >= Phase::closing) return;
    listener_.counters_->count(listener_.counters_->disconnects, "connection_lost");
    spdlog::debug("mqtt: device {}: {}", device_.device_id, why);
    publish_will();
    phase_ = Phase::closing;
    close_socket();
  }

  void finish(std::string_view why) {
    publish_will();
    close_after_write(why);
  }

  void close_after_write(std::string_view) {
    phase_ = Phase::closing;
    if (!write_in_flight_ && !out_.empty()) flush();
    if (!write_in_flight_) close_socket();
  }

  void close_socket() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    boost::system::error_code ignored;
    timer_.cancel();
    if (retry_timer_) retry_timer_->cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (retry_ && retry_->qos != QoS::at_most_once) state_->forget(retry_->id);
    retry_.reset();
    pending_input_ = {};
    if (state_) {
      listener_.sessions_->detach(session_key_, this, std::chrono::seconds(session_expiry_));
      listener_.counters_->sessions.Set(static_cast<double>(listener_.sessions_->size()));
    }
    worker_.live.erase(this);
    listener_.counters_->connections.Decrement();
    slot_ = {};  // the place under the connection caps is free now, not when the last handler runs
  }

  void publish_will() {
    if (!will_ || phase_ != Phase::connected) return;
    Will will = std::move(*will_);
    will_.reset();
    const auto catalog = listener_.context_.catalog.current();
    ++listener_.in_flight_;
    auto immediate = worker_.pipeline->ingest(
        IngestRequest{*catalog, device_, will.content_type, will.payload, envelope::SourceProtocol::mqtt},
        [&listener = listener_](IngestOutcome) { --listener.in_flight_; });
    if (immediate) {
      --listener_.in_flight_;
      if (immediate->status != IngestStatus::accepted) {
        log_problem("mqtt: device {}: Will to '{}' not written: {}", device_.device_id, reason_text(will.topic),
                    first_errors(*immediate));
      }
    }
  }

  // ---- timers

  Clock::duration keep_alive_deadline() const { return std::chrono::milliseconds(std::uint64_t{keep_alive_} * 1500); }

  void arm_timer(Clock::time_point deadline) {
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code error) {
      if (!error) self->on_timer();
    });
  }

  void on_timer() {
    if (phase_ >= Phase::closing) return;
    const auto now = Clock::now();
    if (phase_ == Phase::awaiting_connect) {
      if (handshaking_) listener_.limiter_->refused_tls_handshake();
      listener_.counters_->count(listener_.counters_->disconnects, handshaking_ ? "tls_handshake_timeout" : "connect_timeout");
      phase_ = Phase::closing;
      return close_socket();
    }
    // A connection we do not read cannot show it is alive: it is not timed out meanwhile.
    if (parked_ || held_back()) last_activity_ = now;
    const auto deadline = last_activity_ + keep_alive_deadline();
    if (now >= deadline) {
      return disconnect(ReasonCode::keep_alive_timeout,
                        "nothing received for 1.5 × Keep Alive (" + std::to_string(keep_alive_) + " s)", true);
    }
    arm_timer(deadline);
  }

  template <class... Args>
  void log_problem(spdlog::format_string_t<Args...> format, Args&&... args) {
    std::size_t suppressed = 0;
    if (!worker_.log_limiter.allow(Clock::now(), suppressed)) return;
    if (suppressed > 0) spdlog::warn("mqtt: {} more device problems not logged (rate limit)", suppressed);
    spdlog::warn(format, std::forward<Args>(args)...);
  }

  tcp::socket socket_;
  std::shared_ptr<asio::ssl::context> tls_context_;  // the context this connection was made with, kept alive
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;  // over socket_; null: plain
  std::vector<std::uint8_t> tls_buffer_;                // TLS only
  std::string peer_identity_;                           // CN of a verified client certificate
  asio::steady_timer timer_;
  MqttListener& listener_;
  MqttListener::Worker& worker_;
  const MqttListenerConfig& config_;
  mqtt::FrameReader reader_;
  mqtt::TopicAliases aliases_;
  ConnectionLimiter::Slot slot_;
  Phase phase_ = Phase::awaiting_connect;
  ProtocolVersion version_ = ProtocolVersion::v311;
  bool request_problem_information_ = true;
  bool waiting_ = false;          // an async_wait for readability (TLS: a read) is pending
  bool handshaking_ = false;      // TLS handshake not finished
  bool parked_ = false;           // in worker_.parked, until resume()
  bool write_in_flight_ = false;
  std::uint16_t keep_alive_ = 0;  // seconds, as applied
  std::uint16_t unacked_ = 0;     // QoS 1/2 PUBLISHes received and not yet finally answered
  std::uint32_t client_max_packet_size_ = mqtt::kMaxPacketSizeLimit;
  std::uint32_t session_expiry_ = 0;
  std::uint64_t catalog_generation_ = 0;
  Clock::time_point last_activity_{};
  DeviceIdentity device_;
  std::string client_id_;
  std::string session_key_;
  std::shared_ptr<mqtt::ClientState> state_;
  std::shared_ptr<const TypeRoute> route_;
  std::optional<Will> will_;
  std::optional<Retry> retry_;
  std::unique_ptr<asio::steady_timer> retry_timer_;  // only once the pipeline was overloaded
  std::vector<std::uint8_t> out_;
  std::vector<std::uint8_t> writing_;
  std::vector<std::uint8_t> pending_input_;
};

MqttListener::MqttListener(const ListenerContext& context)
    : context_(context),
      limiter_(std::make_unique<ConnectionLimiter>("mqtt", context.config.mqtt.limits, context.metrics.registry())),
      sessions_(std::make_unique<mqtt::SessionStore>()),
      counters_(std::make_unique<Counters>(context.metrics.registry())) {
  counters_->acked_counter = &context_.metrics.protocol(envelope::SourceProtocol::mqtt).requests_with_status(0);
  auto scheme = mqtt::TopicScheme::compile(context_.config.mqtt.topic);
  if (!scheme) throw std::runtime_error("mqtt.topic: " + scheme.error());  // config validation already said so
  default_scheme_ = std::make_unique<mqtt::TopicScheme>(std::move(*scheme));
}

MqttListener::~MqttListener() {
  if (started_ && !stopping_) stop(std::chrono::milliseconds(0));
}

void MqttListener::start() {
  const MqttListenerConfig& config = context_.config.mqtt;
  if (config.tls.enabled()) tls_ = std::make_unique<TlsContextHolder>(config.tls, "mqtt.tls", &context_.metrics.registry());
  port_ = config.port;
  tls_port_ = config.tls.port;
  for (std::size_t i = 0; i < config.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->pipeline = context_.pipeline.make_worker();
    open_reuseport_acceptor(worker->acceptor.emplace(worker->io), config.address, port_, "mqtt.port");
    port_ = worker->acceptor->local_endpoint().port();  // with port 0, every other acceptor joins this one
    if (tls_) {
      open_reuseport_acceptor(worker->tls_acceptor.emplace(worker->io), config.address, tls_port_, "mqtt.tls.port");
      tls_port_ = worker->tls_acceptor->local_endpoint().port();
    }
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    accept(*worker, false);
    if (tls_) accept(*worker, true);
    worker->thread = std::thread([&io = worker->io] { io.run(); });
  }
  if (!tls_) tls_port_ = 0;
  started_ = true;
  spdlog::info("mqtt: listening on {}:{}{} with {} threads (topic scheme {})", config.address, port_,
               tls_ ? " and TLS on " + std::to_string(tls_port_) : std::string(), config.threads, config.topic);
}

void MqttListener::accept(Worker& worker, bool tls) {
  tcp::acceptor& acceptor = tls ? *worker.tls_acceptor : *worker.acceptor;
  acceptor.async_accept(worker.io, [this, &worker, &acceptor, tls](boost::system::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!error) {
      if (auto slot = limiter_->admit(socket)) {
        std::make_shared<MqttConnection>(std::move(socket), *this, worker, std::move(*slot),
                                         tls ? tls_->current() : nullptr)
            ->start();
      }
    } else if (error == asio::error::no_descriptors) {
      spdlog::warn("mqtt: cannot accept: {} (raise the open-file limit)", error.message());
    }
    accept(worker, tls);
  });
}

void MqttListener::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopping_.exchange(true)) return;
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker] {
      boost::system::error_code ignored;
      worker->acceptor->close(ignored);
      if (worker->tls_acceptor) worker->tls_acceptor->close(ignored);
    });
  }
  // Reading has stopped (held_back() sees stopping_); what is in the pipeline gets its acks.
  const auto deadline = Clock::now() + grace;
  while (in_flight_ > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (in_flight_ > 0) spdlog::warn("mqtt: {} PUBLISHes still unanswered after the grace period", in_flight_.load());
  std::atomic<std::size_t> closing{workers_.size()};
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker, &closing] {
      std::vector<std::shared_ptr<MqttConnection>> connections;
      for (MqttConnection* connection : worker->live) connections.push_back(connection->shared_from_this());
      worker->parked.clear();
      for (auto& connection : connections) connection->shutdown();
      --closing;
    });
  }
  while (closing > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // lets the DISCONNECTs go out
  for (auto& worker : workers_) worker->io.stop();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void MqttListener::pause() { paused_ = true; }

void MqttListener::resume() {
  if (!paused_.exchange(false)) return;
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker] {
      auto parked = std::move(worker->parked);
      worker->parked.clear();
      for (auto& connection : parked) connection->unpark();
    });
  }
}

}  // namespace telegate::gateway
