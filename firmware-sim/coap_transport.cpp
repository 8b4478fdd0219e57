#include "coap_transport.hpp"

#include <coap3/coap.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "batch_acks.hpp"
#include "telegate/gateway/auth.hpp"

namespace telegate::sim {

namespace asio = boost::asio;

CoapSettings parse_coap_uri(const std::string& uri, bool psk, std::chrono::milliseconds timeout) {
  CoapSettings settings;
  settings.timeout = timeout;
  std::string rest;
  if (uri.starts_with("coap://")) {
    rest = uri.substr(7);
  } else if (uri.starts_with("coaps://")) {
    rest = uri.substr(8);
    settings.dtls = true;
  } else {
    throw std::invalid_argument("--uri must start with coap:// or coaps://");
  }
  if (settings.dtls != psk) {
    throw std::invalid_argument("--psk (DTLS-PSK, the listener's only DTLS mode) goes with a coaps:// --uri, and only with it");
  }
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::size_t colon = authority.rfind(':');
  settings.host = authority.substr(0, colon);
  settings.port = colon == std::string::npos ? (settings.dtls ? "5684" : "5683") : authority.substr(colon + 1);
  const std::string path = slash == std::string::npos ? "/v1/telemetry" : rest.substr(slash);
  if (path.find('?') != std::string::npos) throw std::invalid_argument("--uri: no query (the token is added per device)");
  for (std::size_t at = 1; at <= path.size();) {
    const std::size_t end = std::min(path.find('/', at), path.size());
    if (end > at) settings.path.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  if (settings.host.empty()) throw std::invalid_argument("--uri: no host");
  return settings;
}

namespace {

// The Content-Format numbers the listener maps to media types (gateway/coap/README.md).
std::optional<unsigned> content_format(const WireFormat& format) {
  if (format.http_payload != HttpPayload::body) return std::nullopt;
  if (format.content_type == "application/json") return COAP_MEDIATYPE_APPLICATION_JSON;
  if (format.content_type == "application/senml+json") return COAP_MEDIATYPE_APPLICATION_SENML_JSON;
  if (format.content_type == "application/x-protobuf") return COAP_MEDIATYPE_APPLICATION_OCTET_STREAM;
  return std::nullopt;
}

std::size_t number_after(std::string_view text, std::string_view name) {
  const std::size_t at = text.find(name);
  return at == std::string_view::npos ? 0 : std::strtoull(text.data() + at + name.size(), nullptr, 10);
}

}  // namespace

void check_coap_profile(const WireFormat& format) {
  if (!content_format(format)) throw std::invalid_argument("--profile: this profile has no CoAP Content-Format");
}

// See make_coap_client.
class CoapContext final : public SharedTransport {
 public:
  CoapContext(asio::io_context& io, const CoapSettings& settings, std::size_t devices)
      : io_(io), settings_(settings), readable_(io), retransmit_(io),
        sweep_(io, settings.timeout, [this](Clock::time_point oldest_allowed) { return expire(oldest_allowed); }) {
    coap_startup();
    coap_set_log_level(LOG_ERR);
    if (settings.dtls && !coap_dtls_is_supported()) throw std::invalid_argument("--psk: this libcoap has no DTLS");
    context_ = coap_new_context(nullptr);
    if (!context_) throw std::runtime_error("coap: cannot create a context");
    coap_set_app_data(context_, this);
    coap_context_set_block_mode(context_, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
    coap_register_response_handler(context_, &CoapContext::on_response);
    coap_register_nack_handler(context_, &CoapContext::on_nack);
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(settings.host.c_str(), settings.port.c_str(), &hints, &found) != 0 || !found) {
      throw std::invalid_argument("--uri: cannot resolve " + settings.host + ":" + settings.port);
    }
    coap_address_init(&address_);
    address_.size = found->ai_addrlen;
    std::memcpy(&address_.addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    const int fd = coap_context_get_coap_fd(context_);
    if (fd < 0) throw std::runtime_error("coap: libcoap was built without epoll");
    readable_.assign(::dup(fd));
    if (settings.dtls) device_sessions_.resize(devices);
  }

  ~CoapContext() override {
    for (coap_session_t* session : lane_sessions_) {
      if (session) coap_session_release(session);
    }
    for (const Session& session : device_sessions_) {
      if (session.handle) coap_session_release(session.handle);
    }
    coap_free_context(context_);
    coap_cleanup();
  }

  std::unique_ptr<Channel> channel() override;

  // A session of the run, named by a serial no later session reuses. Requests are keyed by
  // their token, which holds the serial: libcoap numbers each session's tokens from 1 and hands
  // a released session's memory to the next one, so a (session pointer, token) key let a new
  // session's request overwrite one still pending on a released session, whose lane then
  // waited for an answer forever.
  struct Session {
    coap_session_t* handle = nullptr;
    std::uint32_t serial = 0;
  };

  // A lane's own session over UDP (no handle after renew() could not open one); over DTLS
  // sessions belong to devices (none here).
  struct Lane {
    Session session;
  };

  void channel_opened() {
    if (open_channels_++ == 0) wait_readable();
  }

  void channel_closed() {
    if (--open_channels_ > 0) return;
    readable_.cancel();
    retransmit_.cancel();
    sweep_.cancel();
  }

  void send(Lane& lane, const Batch& batch, std::function<void(const Outcome&)> done) {
    if (settings_.dtls) return send(device_session(batch), batch, std::move(done));
    if (!lane.session.handle || unanswered_.erase(lane.session.serial) > 0) renew(lane);
    send(lane.session, batch, std::move(done));  // none could be opened: a connect_error, retried
  }

 private:
  struct Pending {
    const Batch* batch = nullptr;
    std::function<void(const Outcome&)> done;
    Clock::time_point sent_at;
  };
  using Key = std::uint64_t;  // a request's token: its session's serial, then libcoap's count

  static Key key_of(coap_bin_const_t token) { return coap_decode_var_bytes8(token.s, token.length); }
  static std::uint32_t serial_of(Key key) { return static_cast<std::uint32_t>(key >> 32); }

  // Names a session just opened (none: no handle): its tokens count from serial << 32.
  Session named(coap_session_t* handle) {
    if (!handle) return {};
    const std::uint32_t serial = ++last_serial_;
    std::uint8_t first[8];
    const unsigned length = coap_encode_var_safe8(first, sizeof first, std::uint64_t{serial} << 32);
    coap_session_init_token(handle, length, first);
    return {handle, serial};
  }

  Session open_udp_session() { return named(coap_new_client_session(context_, nullptr, &address_, COAP_PROTO_UDP)); }

  Lane new_lane() {
    if (settings_.dtls) return {};
    const Session session = open_udp_session();
    if (!session.handle) throw std::runtime_error("coap: cannot open a session");
    lane_sessions_.push_back(session.handle);
    return {session};
  }

  // A UDP lane whose request went unanswered resends on a new session (a new source port), as a
  // device that gave up an exchange would: on the old one libcoap still retransmits that request
  // for up to MAX_TRANSMIT_WAIT (93 s) and holds every later one behind it (NSTART = 1). Mid-run
  // a session that cannot be opened (no descriptor left) leaves the lane without one until its
  // next send; lane_sessions_ holds what the lanes own, in any order.
  void renew(Lane& lane) {
    coap_session_t*& held = *std::find(lane_sessions_.begin(), lane_sessions_.end(), lane.session.handle);
    if (lane.session.handle) coap_session_release(lane.session.handle);
    lane.session = open_udp_session();
    held = lane.session.handle;
  }

  // A DTLS session is one device's identity; made at its first request, kept for the run.
  Session device_session(const Batch& batch) {
    Session& session = device_sessions_[batch.device];
    if (session.handle) return session;
    const std::string key = gateway::sha256_hex(batch.token);
    coap_dtls_cpsk_t setup{};
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    setup.psk_info.identity.s = reinterpret_cast<const std::uint8_t*>(batch.device_id.data());
    setup.psk_info.identity.length = batch.device_id.size();
    setup.psk_info.key.s = reinterpret_cast<const std::uint8_t*>(key.data());
    setup.psk_info.key.length = key.size();
    session = named(coap_new_client_session_psk2(context_, nullptr, &address_, COAP_PROTO_DTLS, &setup));
    return session;
  }

  // Only the session the request failed on: other requests that were in flight on an older
  // one must not end the device's new session when they time out in turn.
  void forget_device_session(const Batch& batch, std::uint32_t failed_on) {
    if (!settings_.dtls) return;
    Session& session = device_sessions_[batch.device];
    if (!session.handle || session.serial != failed_on) return;
    coap_session_t* const failed = session.handle;
    session = {};
    // Silenced now rather than left to finish its retransmissions: requests still queued on it
    // end in on_nack (connect_error) and are resent on the next session at once.
    coap_session_disconnected(failed, COAP_NACK_NOT_DELIVERABLE);
    coap_session_release(failed);
  }

  void send(const Session& named_session, const Batch& batch, std::function<void(const Outcome&)> done) {
    coap_session_t* const session = named_session.handle;
    const auto fail = [&](OutcomeKind kind) {
      Outcome outcome;
      outcome.kind = kind;
      asio::post(io_, [done = std::move(done), outcome] { done(outcome); });
    };
    if (!session) return fail(OutcomeKind::connect_error);
    coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, coap_new_message_id(session),
                                    coap_session_max_pdu_size(session));
    std::uint8_t token[8];
    std::size_t token_length = 0;
    coap_session_new_token(session, &token_length, token);
    coap_add_token(pdu, token_length, token);
    for (const std::string& segment : settings_.path) {
      coap_add_option(pdu, COAP_OPTION_URI_PATH, segment.size(), reinterpret_cast<const std::uint8_t*>(segment.data()));
    }
    std::uint8_t number[4];
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(number, sizeof number, *content_format(*batch.format)), number);
    if (!settings_.dtls) {
      const std::string query = "t=" + batch.token;
      coap_add_option(pdu, COAP_OPTION_URI_QUERY, query.size(), reinterpret_cast<const std::uint8_t*>(query.data()));
    }
    // libcoap sends the blocks from this copy, and may still retransmit one after the lane gave
    // up and rewrote its batch: it frees the copy itself when done.
    auto* body = static_cast<std::uint8_t*>(std::malloc(std::max<std::size_t>(batch.body.size(), 1)));
    std::memcpy(body, batch.body.data(), batch.body.size());
    if (!coap_add_data_large_request(session, pdu, batch.body.size(), body, [](coap_session_t*, void* data) { std::free(data); },
                                     body)) {
      coap_delete_pdu(pdu);
      return fail(OutcomeKind::write_error);
    }
    const Key key = key_of(coap_bin_const_t{token_length, token});
    pending_[key] = {&batch, std::move(done), Clock::now()};
    if (coap_send(session, pdu) == COAP_INVALID_MID) {
      auto unsent = pending_.extract(key);
      if (unsent.empty()) return;  // libcoap ended it from inside coap_send (a nack): resolved already
      done = std::move(unsent.mapped().done);
      return fail(OutcomeKind::write_error);
    }
    schedule();
    sweep_.arm();
  }

  static coap_response_t on_response(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received, coap_mid_t) {
    static_cast<CoapContext*>(coap_get_app_data(coap_session_get_context(session)))->answered(received);
    return COAP_RESPONSE_OK;  // also for an answer to a request already timed out: it is ACKed, not reset
  }

  static void on_nack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason, coap_mid_t) {
    if (!sent) return;
    auto* self = static_cast<CoapContext*>(coap_get_app_data(coap_session_get_context(session)));
    self->resolve(key_of(coap_pdu_get_token(sent)), [reason](const Pending&, Outcome& outcome, BatchAcks&) {
      outcome.kind = reason == COAP_NACK_TOO_MANY_RETRIES ? OutcomeKind::timeout : OutcomeKind::connect_error;
    });
  }

  // The answer as the HTTP code the retry policy and the summary speak: 2.04 → 200 (207 when
  // its JSON rejects some records), 4.22 → 422, 4.29 → 429, 5.03 → 503, c.dd → c·100 + dd.
  void answered(const coap_pdu_t* received) {
    const coap_pdu_code_t code = coap_pdu_get_code(received);
    const unsigned status = static_cast<unsigned>(code >> 5) * 100 + static_cast<unsigned>(code & 0x1f);
    std::size_t length = 0;
    const std::uint8_t* data = nullptr;
    coap_get_data(received, &length, &data);
    std::string payload(reinterpret_cast<const char*>(data), data ? length : 0);
    coap_opt_iterator_t options;
    const coap_opt_t* max_age = coap_check_option(received, COAP_OPTION_MAXAGE, &options);
    const auto wait = std::chrono::seconds(max_age ? coap_decode_var_bytes(coap_opt_value(max_age), coap_opt_length(max_age)) : 0);
    resolve(key_of(coap_pdu_get_token(received)),
            [status, payload = std::move(payload), wait](const Pending& pending, Outcome& outcome, BatchAcks& acks) {
              outcome.status = status;
              outcome.retry_after = wait;
              const std::size_t records = pending.batch->records;
              if (status / 100 == 2) {
                outcome.rejected = number_after(payload, "\"rejected\":");
                outcome.accepted = payload.empty() ? records : number_after(payload, "\"accepted\":");
                // The rejected records, by index; the rest is durable.
                std::vector<std::size_t> rejected;
                for (std::size_t at = payload.find("\"index\":"); at != std::string::npos; at = payload.find("\"index\":", at + 1)) {
                  rejected.push_back(number_after(std::string_view(payload).substr(at), "\"index\":"));
                }
                std::sort(rejected.begin(), rejected.end());
                outcome.status = outcome.rejected > 0 ? 207 : 200;
                acks.acknowledge(*pending.batch, outcome, rejected);
              } else if (status == 422) {
                outcome.rejected = records;
              }
            });
  }

  // Ends a request: `fill` completes its outcome on the io_context thread, outside libcoap's
  // callbacks (the lane's next send must not re-enter libcoap from its handler).
  template <typename Fill>
  void resolve(Key key, Fill fill) {
    const auto found = pending_.find(key);
    if (found == pending_.end()) return;  // timed out already
    auto pending = std::make_shared<Pending>(std::move(found->second));
    pending_.erase(found);
    const Clock::duration latency = Clock::now() - pending->sent_at;
    asio::post(io_, [this, pending, latency, serial = serial_of(key), fill = std::move(fill)] {
      Outcome outcome;
      outcome.latency = latency;
      fill(*pending, outcome, acks_);
      // A DTLS session that failed or went unanswered (the gateway restarted and forgot it), or
      // was answered 4.01 (the device's key changed), handshakes anew at the next request.
      if (outcome.kind != OutcomeKind::answered || outcome.status == 401) forget_device_session(*pending->batch, serial);
      pending->done(outcome);
    });
  }

  void wait_readable() {
    readable_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code error) {
      if (error) return;
      process();
      wait_readable();
    });
  }

  void process() {
    coap_io_process(context_, COAP_IO_NO_WAIT);
    schedule();
  }

  // libcoap's next retransmission (or other timer), from its epoll preparation.
  void schedule() {
    coap_tick_t now;
    coap_ticks(&now);
    const unsigned ms = coap_io_prepare_epoll(context_, now);
    if (ms == 0 || open_channels_ == 0) return;
    retransmit_.expires_after(std::chrono::milliseconds(ms));
    retransmit_.async_wait([this](boost::system::error_code error) {
      if (!error) process();
    });
  }

  // A request unanswered for --timeout-ms (retransmissions spent, or a separate response that
  // never came) ends as a timeout and is resent by its lane.
  bool expire(Clock::time_point oldest_allowed) {
    std::vector<Key> expired;
    for (const auto& [key, pending] : pending_) {
      if (pending.sent_at < oldest_allowed) expired.push_back(key);
    }
    for (const Key& key : expired) {
      if (!settings_.dtls) unanswered_.insert(serial_of(key));
      resolve(key, [](const Pending&, Outcome& outcome, BatchAcks&) { outcome.kind = OutcomeKind::timeout; });
    }
    return !pending_.empty();
  }

  asio::io_context& io_;
  const CoapSettings& settings_;
  coap_context_t* context_ = nullptr;
  coap_address_t address_;
  asio::posix::stream_descriptor readable_;  // a dup of libcoap's epoll descriptor
  asio::steady_timer retransmit_;
  TimeoutSweep sweep_;
  std::size_t open_channels_ = 0;
  std::uint32_t last_serial_ = 0;
  std::vector<coap_session_t*> lane_sessions_;
  std::vector<Session> device_sessions_;  // DTLS: by device index, made on first use
  std::set<std::uint32_t> unanswered_;    // serials of UDP lane sessions with a timed-out request
  std::map<Key, Pending> pending_;
  BatchAcks acks_;
};

std::unique_ptr<Channel> CoapContext::channel() {
  return std::make_unique<SharedChannel<CoapContext, Lane>>(*this, new_lane());
}

std::unique_ptr<SharedTransport> make_coap_client(asio::io_context& io, const CoapSettings& settings,
                                                  std::size_t devices) {
  return std::make_unique<CoapContext>(io, settings, devices);
}

}  // namespace telegate::sim
