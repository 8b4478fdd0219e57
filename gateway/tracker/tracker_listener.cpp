#include "tracker/tracker_listener.hpp"

#include <boost/asio.hpp>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "src/connection_limiter.hpp"
#include "src/tcp_acceptor.hpp"
#include "telegate/gateway/catalog.hpp"

namespace telegate::gateway::tracker {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadChunkBytes = 4u << 10;
constexpr std::size_t kMaxDatagramBytes = 65'535;
// UDP datagrams in the pipeline at once; beyond, the socket is not read (the kernel buffer,
// then the trackers' resends, take the excess).
constexpr std::size_t kMaxDatagramsInFlight = 256;
constexpr std::chrono::milliseconds kOverloadRetry{100};

// What a pipeline outcome means for the tracker: ack (records durable, or refused for good),
// try again shortly (load), or close without ack so that the tracker resends later.
enum class Verdict : std::uint8_t { ack, retry, close };

Verdict verdict(IngestStatus status) noexcept {
  switch (status) {
    case IngestStatus::accepted:
    case IngestStatus::partially_accepted:
    // Records that fail validation would fail again on every resend, and a tracker resends the
    // oldest unacknowledged frame forever: they are acknowledged, counted as rejected. So is a
    // record too large for Kafka.
    case IngestStatus::all_rejected:
    case IngestStatus::record_too_large: return Verdict::ack;
    case IngestStatus::overloaded:
    case IngestStatus::quota_exceeded: return Verdict::retry;
    default: return Verdict::close;
  }
}

std::string_view outcome_label(IngestStatus status) noexcept {
  switch (status) {
    case IngestStatus::accepted: return "acked";
    case IngestStatus::partially_accepted: return "acked_partial";
    case IngestStatus::all_rejected: return "acked_invalid";
    case IngestStatus::overloaded: return "overloaded";
    case IngestStatus::quota_exceeded: return "quota_exceeded";
    case IngestStatus::sink_failed: return "not_durable";
    case IngestStatus::malformed: return "malformed";
    case IngestStatus::too_large:
    case IngestStatus::record_too_large: return "too_large";
    case IngestStatus::unsupported_media_type: return "unsupported_codec";
    case IngestStatus::forbidden: return "forbidden";
  }
  return "unknown";
}

}  // namespace

struct TrackerListener::Counters {
  Counters(prometheus::Registry& registry, std::string_view protocol_name)
      : protocol(protocol_name),
        frames(prometheus::BuildCounter()
                   .Name("telegate_tracker_frames_total")
                   .Help("Tracker frames read, by protocol and outcome")
                   .Register(registry)),
        logins(prometheus::BuildCounter()
                   .Name("telegate_tracker_logins_total")
                   .Help("Tracker logins (IMEI handshakes; UDP: datagrams' IMEIs), by protocol and outcome")
                   .Register(registry)),
        connections(prometheus::BuildGauge()
                        .Name("telegate_tracker_connections")
                        .Help("Tracker TCP connections open, by protocol")
                        .Register(registry)
                        .Add({{"protocol", protocol}})) {}

  // prometheus-cpp returns the existing child for known labels; frames are seconds apart per
  // tracker, so the look-up is not worth caching per outcome.
  void frame(std::string_view outcome) { frames.Add({{"protocol", protocol}, {"outcome", std::string(outcome)}}).Increment(); }
  void login(std::string_view outcome) { logins.Add({{"protocol", protocol}, {"outcome", std::string(outcome)}}).Increment(); }

  std::string protocol;
  prometheus::Family<prometheus::Counter>& frames;
  prometheus::Family<prometheus::Counter>& logins;
  prometheus::Gauge& connections;
};

struct TrackerListener::Worker {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> keep_running{io.get_executor()};
  std::optional<tcp::acceptor> acceptor;
  std::optional<udp::socket> datagrams;
  std::unique_ptr<TrackerProtocol> datagram_protocol;
  std::array<std::uint8_t, kMaxDatagramBytes> datagram{};
  udp::endpoint peer;
  bool receiving = false;
  std::size_t datagrams_in_flight = 0;
  std::unique_ptr<PipelineWorker> pipeline;
  std::vector<std::shared_ptr<TrackerConnection>> parked;  // waiting for resume()
  std::unordered_set<TrackerConnection*> live;
  // One warning a second at most: a hostile client's bad frames must not become a log flood
  // (the metrics count every one).
  Clock::time_point last_warning{};
  std::size_t suppressed_warnings = 0;
  std::thread thread;
};

// One tracker's TCP connection. Owned by the shared_ptrs of its pending operations (read,
// write, timers, posted completions) and, while parked, by the Worker; runs only on the
// listener's thread. Holds its place under the connection caps until closed.
class TrackerConnection final : public std::enable_shared_from_this<TrackerConnection> {
 public:
  TrackerConnection(tcp::socket socket, TrackerListener& listener, ConnectionLimiter::Slot slot)
      : socket_(std::move(socket)),
        idle_(socket_.get_executor()),
        retry_(socket_.get_executor()),
        listener_(listener),
        worker_(*listener.worker_),
        protocol_(listener.spec_.stream(listener.config_.max_frame_bytes)),
        slot_(std::move(slot)) {}

  void start() {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    worker_.live.insert(this);
    listener_.counters_->connections.Increment();
    last_activity_ = Clock::now();
    arm_idle(last_activity_ + listener_.config_.idle_timeout);
    read();
  }

  void unpark() {
    parked_ = false;
    read();
  }

  void shutdown() { close_socket(); }

 private:
  void read() {
    if (closing_ || reading_ || parked_ || busy_) return;
    if (listener_.stopping_) return;
    if (listener_.paused_) {
      parked_ = true;
      worker_.parked.push_back(shared_from_this());
      return;
    }
    reading_ = true;
    socket_.async_read_some(asio::buffer(chunk_), [self = shared_from_this()](boost::system::error_code error, std::size_t size) {
      self->reading_ = false;
      if (self->closing_) return;
      if (error) return self->close_socket();  // closed by the tracker, or reset
      self->in_.insert(self->in_.end(), self->chunk_.begin(), self->chunk_.begin() + static_cast<std::ptrdiff_t>(size));
      self->last_activity_ = Clock::now();
      self->process();
    });
  }

  // Cuts frames from the buffer until one goes to the pipeline or more bytes are needed.
  void process() {
    while (!closing_ && !busy_) {
      auto frame = protocol_->next_frame(in_);
      if (!frame) {
        listener_.counters_->frame(to_string(frame.error().code));
        log_problem("frame refused: " + frame.error().message);
        // A well-formed packet the protocol does not read (GT06 clones mix in many types) is
        // dropped and the stream read on: closing would cut off every location behind it.
        if (const std::size_t skip = frame.error().skip; skip > 0 && skip <= in_.size()) {
          in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(skip));
          continue;
        }
        // Otherwise the stream cannot be trusted past a bad frame; whatever was acknowledged
        // before it is durable, the rest the tracker still holds and resends on its next connection.
        return close_after_write();
      }
      switch (frame->kind) {
        case Frame::Kind::need_more:
          if (in_.size() > listener_.config_.max_frame_bytes) {
            listener_.counters_->frame(to_string(TrackerErrc::frame_too_large));
            return close_after_write();
          }
          return read();
        case Frame::Kind::login:
          on_login(*frame);
          break;
        case Frame::Kind::heartbeat:
          listener_.counters_->frame("heartbeat");
          send(protocol_->heartbeat_reply(*frame));
          break;
        case Frame::Kind::records:
          return on_records(std::move(*frame));
      }
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(frame->consumed));
    }
  }

  void on_login(const Frame& frame) {
    const auto catalog = listener_.context_.catalog.current();
    const DeviceIdentity* device = listener_.find_device(*catalog, frame.imei);
    send(protocol_->login_reply(frame, device != nullptr));
    if (!device) {
      listener_.counters_->login("unknown_imei");
      listener_.context_.metrics.protocol(envelope::SourceProtocol::tcp).reject(RejectReason::unauthenticated, 1);
      log_problem("IMEI " + frame.imei + " is not a provisioned device: refused");
      return close_after_write();
    }
    listener_.counters_->login("accepted");
    device_ = *device;
  }

  void on_records(Frame frame) {
    if (!device_) {
      listener_.counters_->frame(to_string(TrackerErrc::not_logged_in));
      return close_after_write();
    }
    // Re-read per frame: a device deleted since its login is refused from its next frame on.
    const auto catalog = listener_.context_.catalog.current();
    const DeviceIdentity* device = listener_.find_device(*catalog, device_->device_id);
    if (!device || device->tenant != device_->tenant || device->device_type != device_->device_type) {
      listener_.counters_->login("revoked");
      return close_after_write();
    }
    busy_ = true;
    pending_ = std::move(frame);
    ++listener_.in_flight_;
    auto immediate = worker_.pipeline->ingest(
        IngestRequest{*catalog, *device_, listener_.spec_.content_type, pending_.payload, envelope::SourceProtocol::tcp},
        [weak = weak_from_this(), &listener = listener_](IngestOutcome outcome) {
          --listener.in_flight_;
          if (auto self = weak.lock()) {
            asio::post(self->socket_.get_executor(), [self, status = outcome.status] { self->completed(status); });
          }
        });
    if (!immediate) return;
    --listener_.in_flight_;
    completed(immediate->status);
  }

  // The pipeline's answer for pending_ (the buffer still holds its bytes: nothing is read while busy).
  void completed(IngestStatus status) {
    if (closing_) return;
    listener_.counters_->frame(outcome_label(status));
    switch (verdict(status)) {
      case Verdict::ack:
        send(protocol_->records_reply(pending_, pending_.record_count));
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pending_.consumed));
        busy_ = false;
        last_activity_ = Clock::now();
        return process();
      case Verdict::retry:
        // The frame is cut again from the same bytes once the budget has room.
        retry_.expires_after(kOverloadRetry);
        retry_.async_wait([self = shared_from_this()](boost::system::error_code error) {
          if (error || self->closing_) return;
          self->busy_ = false;
          self->process();
        });
        return;
      case Verdict::close:
        log_problem(std::string("frame not acknowledged: ") + std::string(outcome_label(status)));
        return close_after_write();
    }
  }

  void send(std::string bytes) {
    if (bytes.empty() || closing_) return;
    out_ += bytes;
    flush();
  }

  void flush() {
    if (writing_ || out_.empty()) return;
    writing_ = true;
    sending_.swap(out_);
    asio::async_write(socket_, asio::buffer(sending_), [self = shared_from_this()](boost::system::error_code error, std::size_t) {
      self->writing_ = false;
      self->sending_.clear();
      if (error) return self->close_socket();
      if (self->closing_ && self->out_.empty()) return self->close_socket();
      self->flush();
    });
  }

  void close_after_write() {
    closing_ = true;
    flush();
    if (!writing_) close_socket();
  }

  void close_socket() {
    if (closed_) return;
    closing_ = closed_ = true;
    boost::system::error_code ignored;
    idle_.cancel();
    retry_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    worker_.live.erase(this);
    listener_.counters_->connections.Decrement();
    slot_ = {};
  }

  void arm_idle(Clock::time_point deadline) {
    idle_.expires_at(deadline);
    idle_.async_wait([self = shared_from_this()](boost::system::error_code error) {
      if (error || self->closed_) return;
      const auto now = Clock::now();
      // A frame in the pipeline or a paused listener is our silence, not the tracker's.
      if (self->busy_ || self->parked_) self->last_activity_ = now;
      const auto next = self->last_activity_ + self->listener_.config_.idle_timeout;
      if (now < next) return self->arm_idle(next);
      self->listener_.counters_->frame("idle_timeout");
      self->close_socket();
    });
  }

  void log_problem(const std::string& message) {
    const auto now = Clock::now();
    if (now - worker_.last_warning < std::chrono::seconds(1)) {
      ++worker_.suppressed_warnings;
      return;
    }
    worker_.last_warning = now;
    spdlog::warn("{}: {}: {}{}", listener_.name_, device_ ? device_->device_id : std::string("(not logged in)"), message,
                 worker_.suppressed_warnings ? fmt::format(" ({} more problems not logged)", std::exchange(worker_.suppressed_warnings, 0))
                                             : std::string());
  }

  tcp::socket socket_;
  asio::steady_timer idle_;
  asio::steady_timer retry_;
  TrackerListener& listener_;
  TrackerListener::Worker& worker_;
  std::unique_ptr<TrackerProtocol> protocol_;
  ConnectionLimiter::Slot slot_;
  std::array<std::uint8_t, kReadChunkBytes> chunk_{};
  std::vector<std::uint8_t> in_;  // unparsed bytes; at most max_frame_bytes plus one read
  std::string out_;
  std::string sending_;
  std::optional<DeviceIdentity> device_;  // after a successful login
  Frame pending_;                         // the frame in the pipeline while busy_
  Clock::time_point last_activity_{};
  bool reading_ = false;
  bool writing_ = false;
  bool busy_ = false;    // a frame is in the pipeline (or waiting to retry): nothing is read
  bool parked_ = false;  // in worker_.parked until resume()
  bool closing_ = false;
  bool closed_ = false;
};

TrackerListener::TrackerListener(const ListenerContext& context, const TrackerListenerConfig& config, ProtocolSpec spec)
    : context_(context),
      config_(config),
      spec_(spec),
      name_("tracker." + std::string(spec.name)),
      limiter_(std::make_unique<ConnectionLimiter>(name_, config.limits, context.metrics.registry())),
      counters_(std::make_unique<Counters>(context.metrics.registry(), spec.name)),
      worker_(std::make_unique<Worker>()) {}

TrackerListener::~TrackerListener() {
  if (started_ && !stopping_) stop(std::chrono::milliseconds(0));
}

const DeviceIdentity* TrackerListener::find_device(const Catalog& catalog, std::string_view imei) const {
  if (!config_.tenant.empty()) return catalog.devices().find(config_.tenant, imei);
  const auto entry = catalog.devices().by_psk_identity(imei);
  return entry ? entry->device : nullptr;
}

void TrackerListener::start() {
  Worker& worker = *worker_;
  worker.pipeline = context_.pipeline.make_worker();
  open_reuseport_acceptor(worker.acceptor.emplace(worker.io), config_.bind, config_.tcp_port, name_ + ".tcp_port");
  tcp_port_ = worker.acceptor->local_endpoint().port();
  if (config_.udp_port != 0 && !spec_.datagram) {
    throw std::invalid_argument(name_ + ".udp_port: " + std::string(spec_.name) + " trackers do not use UDP; set it to 0");
  }
  if (config_.udp_port != 0) {
    boost::system::error_code error;
    const auto address = asio::ip::make_address(config_.bind, error);
    worker.datagrams.emplace(worker.io);
    const udp::endpoint endpoint(address, config_.udp_port);
    worker.datagrams->open(endpoint.protocol(), error);
    if (!error) worker.datagrams->bind(endpoint, error);
    if (error) {
      throw std::runtime_error(name_ + ".udp_port: cannot bind " + config_.bind + ":" + std::to_string(config_.udp_port) +
                               ": " + error.message());
    }
    udp_port_ = worker.datagrams->local_endpoint().port();
    worker.datagram_protocol = spec_.datagram(config_.max_frame_bytes);
    receive_datagram();
  }
  accept();
  worker.thread = std::thread([&io = worker.io] { io.run(); });
  started_ = true;
  spdlog::info("{}: listening on {} tcp {}{}", name_, config_.bind, tcp_port_,
               udp_port_ ? " udp " + std::to_string(udp_port_) : std::string());
}

void TrackerListener::accept() {
  worker_->acceptor->async_accept(worker_->io, [this](boost::system::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !worker_->acceptor->is_open()) return;
    if (!error) {
      if (auto slot = limiter_->admit(socket)) std::make_shared<TrackerConnection>(std::move(socket), *this, std::move(*slot))->start();
    } else if (error == asio::error::no_descriptors) {
      spdlog::warn("{}: cannot accept: {} (raise the open-file limit)", name_, error.message());
    }
    accept();
  });
}

void TrackerListener::receive_datagram() {
  Worker& worker = *worker_;
  if (worker.receiving || stopping_ || paused_ || worker.datagrams_in_flight >= kMaxDatagramsInFlight) return;
  worker.receiving = true;
  worker.datagrams->async_receive_from(asio::buffer(worker.datagram), worker.peer,
                                       [this](boost::system::error_code error, std::size_t size) {
                                         worker_->receiving = false;
                                         if (error == asio::error::operation_aborted || !worker_->datagrams->is_open()) return;
                                         if (!error) on_datagram(size);
                                         receive_datagram();
                                       });
}

// Each datagram is one whole frame carrying its IMEI; the ack goes back to its sender once the
// records are committed. Nothing is answered otherwise: the tracker resends.
void TrackerListener::on_datagram(std::size_t size) {
  Worker& worker = *worker_;
  auto frame = worker.datagram_protocol->next_frame(std::span<const std::uint8_t>(worker.datagram.data(), size));
  if (!frame) {
    counters_->frame(to_string(frame.error().code));
    spdlog::debug("{}: datagram from {} refused: {}", name_, worker.peer.address().to_string(), frame.error().message);
    return;
  }
  if (frame->kind != Frame::Kind::records) return counters_->frame("unexpected");
  const auto catalog = context_.catalog.current();
  const DeviceIdentity* device = find_device(*catalog, frame->imei);
  if (!device) {
    counters_->login("unknown_imei");
    context_.metrics.protocol(envelope::SourceProtocol::tcp).reject(RejectReason::unauthenticated, 1);
    return;
  }
  ++in_flight_;
  ++worker.datagrams_in_flight;
  // The reply is built now: the completion no longer has the datagram (the buffer is reused).
  const std::string reply = worker.datagram_protocol->records_reply(*frame, frame->record_count);
  auto done = [this, peer = worker.peer, reply](IngestStatus status) {
    --worker_->datagrams_in_flight;
    counters_->frame(outcome_label(status));
    if (verdict(status) == Verdict::ack && !reply.empty()) {
      boost::system::error_code ignored;
      worker_->datagrams->send_to(asio::buffer(reply), peer, 0, ignored);
    }
    receive_datagram();
  };
  auto immediate = worker.pipeline->ingest(
      IngestRequest{*catalog, *device, spec_.content_type, frame->payload, envelope::SourceProtocol::tcp},
      [this, done](IngestOutcome outcome) {
        --in_flight_;
        asio::post(worker_->io, [done, status = outcome.status] { done(status); });
      });
  if (!immediate) return;
  --in_flight_;
  done(immediate->status);
}

void TrackerListener::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopping_.exchange(true)) return;
  Worker& worker = *worker_;
  asio::post(worker.io, [&worker] {
    boost::system::error_code ignored;
    worker.acceptor->close(ignored);
  });
  // Reading has stopped; frames in the pipeline still get their acks.
  const auto deadline = Clock::now() + grace;
  while (in_flight_ > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (in_flight_ > 0) spdlog::warn("{}: {} frames still unanswered after the grace period", name_, in_flight_.load());
  std::atomic<bool> closed{false};
  asio::post(worker.io, [&worker, &closed] {
    boost::system::error_code ignored;
    if (worker.datagrams) worker.datagrams->close(ignored);
    std::vector<std::shared_ptr<TrackerConnection>> connections;
    for (TrackerConnection* connection : worker.live) connections.push_back(connection->shared_from_this());
    worker.parked.clear();
    for (auto& connection : connections) connection->shutdown();
    closed = true;
  });
  while (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  worker.io.stop();
  if (worker.thread.joinable()) worker.thread.join();
}

void TrackerListener::pause() { paused_ = true; }

void TrackerListener::resume() {
  if (!paused_.exchange(false)) return;
  asio::post(worker_->io, [this] {
    auto parked = std::move(worker_->parked);
    worker_->parked.clear();
    for (auto& connection : parked) connection->unpark();
    if (worker_->datagrams) receive_datagram();
  });
}

ListenerFactory listener_factory(TrackerListenerConfig TrackerConfig::*section, ProtocolSpec spec) {
  return [section, spec](const ListenerContext& context) -> std::unique_ptr<Listener> {
    const TrackerListenerConfig& config = context.config.tracker.*section;
    if (!config.enabled) return nullptr;
    return std::make_unique<TrackerListener>(context, config, spec);
  };
}

}  // namespace telegate::gateway::tracker
