#include "http/http_listener.hpp"

#include "src/admin_api.hpp"
#include "src/connection_limiter.hpp"
#include "src/tcp_acceptor.hpp"
#include "src/tls_context.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <functional>
#include <optional>
#include <thread>

namespace telegate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

struct StatusMapping {
  http::status status;
  std::string_view code;
};

StatusMapping map_status(IngestStatus status) {
  switch (status) {
    case IngestStatus::accepted: return {http::status::ok, "accepted"};
    case IngestStatus::partially_accepted: return {http::status::multi_status, "partially_accepted"};
    case IngestStatus::all_rejected: return {http::status::unprocessable_entity, "all_rejected"};
    case IngestStatus::malformed: return {http::status::bad_request, "malformed_body"};
    case IngestStatus::too_large: return {http::status::payload_too_large, "too_many_records"};
    case IngestStatus::record_too_large: return {http::status::payload_too_large, "record_too_large"};
    case IngestStatus::unsupported_media_type: return {http::status::unsupported_media_type, "unsupported_media_type"};
    case IngestStatus::forbidden: return {http::status::forbidden, "forbidden"};
    case IngestStatus::overloaded: return {http::status::service_unavailable, "overloaded"};
    case IngestStatus::quota_exceeded: return {http::status::too_many_requests, "quota_exceeded"};
    case IngestStatus::sink_failed: return {http::status::service_unavailable, "not_durable"};
  }
  return {http::status::internal_server_error, "internal"};
}

std::string error_body(std::string_view code, std::string_view message, std::optional<std::size_t> offset = {}) {
  std::string body = "{\"error\":";
  envelope::append_json_string(body, code);
  body += ",\"message\":";
  envelope::append_json_string(body, message);
  if (offset) body += ",\"offset\":" + std::to_string(*offset);
  body += "}";
  return body;
}

// Appends the per-record answer to `body`.
void append_outcome_body(const IngestOutcome& outcome, std::string& body) {
  body.reserve(body.size() + 64 + outcome.msg_ids.size() * 40 + outcome.errors.size() * 96);
  body += "{\"accepted\":";
  envelope::append_decimal(body, outcome.accepted);
  body += ",\"rejected\":";
  envelope::append_decimal(body, outcome.errors.size());
  if (outcome.duplicates) {
    body += ",\"duplicates\":";
    envelope::append_decimal(body, outcome.duplicates);
  }
  body += ",\"errors\":[";
  for (std::size_t i = 0; i < outcome.errors.size(); ++i) {
    const codecs::FieldError& error = outcome.errors[i];
    body += i ? ",{\"index\":" : "{\"index\":";
    envelope::append_decimal(body, error.index);
    body += ",\"field\":";
    envelope::append_json_string(body, error.field);
    body += ",\"reason\":";
    envelope::append_json_string(body, error.reason);
    body += '}';
  }
  body += "],\"msg_ids\":[";
  for (std::size_t i = 0; i < outcome.msg_ids.size(); ++i) {
    if (i) body += ',';
    envelope::append_json_string(body, outcome.msg_ids[i]);
  }
  body += "]}";
}

std::string_view view(beast::string_view text) { return {text.data(), text.size()}; }

// The credentials after `scheme` ("bearer " or "basic ", matched case-insensitively), trimmed.
std::string_view credentials(std::string_view authorization, std::string_view scheme) {
  if (authorization.size() <= scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return {};
  }
  authorization.remove_prefix(scheme.size());
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  while (!authorization.empty() && authorization.back() == ' ') authorization.remove_suffix(1);
  return authorization;
}

// The password of HTTP Basic credentials (the device token; the user name is informative only,
// since apps such as OwnTracks put their own user name there).
std::string basic_password(std::string_view authorization) {
  const std::string_view encoded = credentials(authorization, "basic ");
  if (encoded.empty() || encoded.size() > 4096 || encoded.size() % 4 != 0) return {};
  std::string decoded(encoded.size() / 4 * 3, '\0');
  const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                     reinterpret_cast<const unsigned char*>(encoded.data()), static_cast<int>(encoded.size()));
  if (length < 0) return {};
  std::size_t size = static_cast<std::size_t>(length);
  for (std::size_t i = encoded.size(); i > 0 && encoded[i - 1] == '='; --i) --size;  // EVP counts padding
  decoded.resize(size);
  const std::size_t colon = decoded.find(':');
  return colon == std::string::npos ? std::string() : decoded.substr(colon + 1);
}

}  // namespace

struct HttpListener::Worker {
  asio::io_context io{1};
  std::optional<tcp::acceptor> acceptor;
  std::optional<tcp::acceptor> tls_acceptor;  // with http.tls
  std::unique_ptr<PipelineWorker> pipeline;
  // Admin requests may block on the catalog store, so they run here, off the I/O thread.
  std::unique_ptr<asio::thread_pool> admin;
  // Sessions waiting for resume(), as their read_request() (the closure owns the session: a
  // parked session has no pending operation to keep it alive, and dropping it would reset the
  // device's connection).
  std::vector<std::function<void()>> parked;
  std::thread thread;
};

// One keep-alive connection, plain (Stream = beast::tcp_stream) or TLS (TlsStream). Owned by
// shared_ptrs held by its pending asynchronous operations (and, while a telemetry request waits
// for the sink, by that completion); runs only on its Worker's thread — sink completions are
// posted there. Holds its place in the listener's connection caps until destroyed.
//
// Timeouts are enforced by one lazy timer per session rather than by beast::tcp_stream's expiry,
// which arms a timer wait and cancels it for every read and every write (~0.7 µs per request).
// A phase sets deadline_ (a clock read); the timer fires at the earliest deadline it has seen,
// and at least every `stride` (the shortest of the timeouts), so a deadline set later — never
// sooner than `stride` ahead — is never missed: when it fires, it closes the connection if the
// deadline has passed, re-arms for it if not, and stops if no phase is timed (the sink wait,
// a parked session). The connection is closed at the same moments as before.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Stream stream, HttpListener& listener, HttpListener::Worker& worker, ConnectionLimiter::Slot slot,
              std::shared_ptr<asio::ssl::context> tls_context = nullptr)
      : stream_(std::move(stream)),
        listener_(listener),
        worker_(worker),
        slot_(std::move(slot)),
        tls_context_(std::move(tls_context)),
        deadline_timer_(worker.io),
        stride_(std::min({listener.context_.config.http.idle_timeout, listener.context_.config.http.request_timeout,
                          std::same_as<Stream, TlsStream> ? listener.context_.config.http.tls.handshake_timeout
                                                           : listener.context_.config.http.request_timeout})) {}

  // TLS: the handshake, bounded by http.tls.handshake_timeout_s, then the first request. The
  // verified client certificate (if any) names the device for requests without a token.
  void handshake() requires std::same_as<Stream, TlsStream> {
    set_deadline(Clock::now() + listener_.context_.config.http.tls.handshake_timeout);
    stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code error) {
      if (error) {
        self->listener_.limiter_->refused_tls_handshake();
        spdlog::debug("http: TLS handshake failed: {}", error.message());
        return self->close();
      }
      self->peer_identity_ = verified_peer_identity(self->stream_.native_handle());
      self->read_request();
    });
  }

  // Waits up to http.idle_timeout_s for a request's first bytes; from then on the whole request
  // (headers trickled byte by byte included) must arrive within http.request_timeout_s.
  void read_request() {
    deadline_ = kNoDeadline;
    if (listener_.paused_) {
      worker_.parked.push_back([self = this->shared_from_this()] { self->read_request(); });
      return;
    }
    const HttpListenerConfig& config = listener_.context_.config.http;
    parser_.emplace();
    parser_->body_limit(config.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
    if (buffer_.size()) return read_header();  // a pipelined request: its bytes have arrived
    set_deadline(Clock::now() + config.idle_timeout);
    read_some([](HttpSession& self) { self.read_header(); });
  }

 private:
  // The least a read asks for (a connection's first read takes no more).
  static constexpr std::size_t kFirstReadBytes = 4096;
  static constexpr std::size_t kKeptBufferBytes = 64 << 10;

  static constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void set_deadline(Clock::time_point deadline) {
    deadline_ = deadline;
    if (!deadline_armed_) arm_deadline_timer();
  }

  void arm_deadline_timer() {
    deadline_armed_ = true;
    deadline_timer_.expires_at(std::min(deadline_, Clock::now() + stride_));
    deadline_timer_.async_wait([self = this->shared_from_this()](beast::error_code error) {
      self->deadline_armed_ = false;
      if (error || self->deadline_ == kNoDeadline) return;  // closed, or nothing timed now
      if (Clock::now() < self->deadline_) return self->arm_deadline_timer();
      spdlog::debug("http: connection timed out");
      self->close();  // the pending read or write ends with an error, and closes again
    });
  }

  // The response is written by the request's deadline (as Beast's expiry, set when the request
  // began, bounded it); reading the request started it.
  void read_header() {
    request_deadline_ = Clock::now() + listener_.context_.config.http.request_timeout;
    set_deadline(request_deadline_);
    parse(false);
  }

  // Feeds buffer_ to the parser, reading more as it asks, until it has the header (body ==
  // false: then on_header) or the whole chunked body (then on_request). Done here rather than by
  // http::async_read so that what Beast throws on hostile input — std::length_error for a field
  // name over 64 KiB, in the header or a chunked body's trailer — answers 400 instead of ending
  // the I/O thread; and the parser sees at most http.max_header_bytes at a time, so that a chunk
  // line or trailer, which Beast does not limit, is held to that like the header, whatever way
  // its bytes arrive.
  void parse(bool body) {
    const std::size_t window = listener_.context_.config.http.max_header_bytes;
    const auto done = [&] { return body ? parser_->is_done() : parser_->is_header_done(); };
    beast::error_code error;
    try {
      while (!done() && buffer_.size() > 0) {
        const std::size_t used = parser_->put(asio::buffer(buffer_.data(), window), error);
        buffer_.consume(used);
        if ((error && error != http::error::need_more) || used == 0) break;
      }
    } catch (const std::exception& thrown) {
      return respond(http::status::bad_request, error_body("bad_request", thrown.what()), true);
    }
    if (error && error != http::error::need_more) return on_read_error(error);
    if (done()) return body ? on_request(false) : on_header();
    if (buffer_.size() >= window) return on_read_error(http::error::header_limit);  // needs more than a window
    read_some([body](HttpSession& self) { self.parse(body); });
  }

  // Reads whatever has arrived into buffer_, as much as its free space holds (kFirstReadBytes at
  // the least), then goes on with `next`.
  template <class Next>
  void read_some(Next next) {
    stream_.async_read_some(buffer_.prepare(std::max(kFirstReadBytes, buffer_.capacity() - buffer_.size())),
                            [self = this->shared_from_this(), next](beast::error_code error, std::size_t size) {
                              self->buffer_.commit(size);
                              if (error) return self->on_read_error(error);
                              next(*self);
                            });
  }

  void on_header() {
    const auto& header = parser_->get();
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      // curl asks before sending large bodies; answering saves it a one-second wait.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = this->shared_from_this()](beast::error_code write_error, std::size_t) {
                          if (write_error) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  // A body with a Content-Length (what devices send) is read straight into buffer_, behind
  // the part of it that came with the headers, and handed to the pipeline where it lies. Beast's
  // parser would read it in pieces no larger than buffer_'s free space (a 50 KB body took a dozen
  // 4 KiB reads) and copy each into a string that is zero-filled first. Chunked bodies go
  // through the parser (a request without either has no body: the parser is done already).
  void read_body() {
    const auto length = parser_->content_length();  // none when chunked
    if (!length) {
      parser_->eager(true);
      return parse(true);
    }
    body_bytes_ = static_cast<std::size_t>(*length);  // at most http.max_body_bytes: the parser checked
    if (buffer_.size() >= body_bytes_) return on_request(true);
    // Room for the start of the next request too, so that it finds the space it needs already
    // there; the read completes as soon as the body is in.
    const std::size_t missing = body_bytes_ - buffer_.size();
    asio::async_read(stream_, buffer_.prepare(missing + kFirstReadBytes), asio::transfer_at_least(missing),
                     [self = this->shared_from_this()](beast::error_code error, std::size_t size) {
                       self->buffer_.commit(size);
                       if (error) return self->on_read_error(error);
                       self->on_request(true);
                     });
  }

  void on_read_error(beast::error_code error) {
    if (error == http::error::body_limit) {
      return respond(http::status::payload_too_large,
                     error_body("body_too_large", "the body exceeds http.max_body_bytes (" +
                                                      std::to_string(listener_.context_.config.http.max_body_bytes) +
                                                      " bytes)"),
                     true);
    }
    if (error == http::error::header_limit) {
      return respond(http::status::request_header_fields_too_large,
                     error_body("headers_too_large", "the request line and headers exceed http.max_header_bytes (" +
                                                         std::to_string(listener_.context_.config.http.max_header_bytes) +
                                                         " bytes)"),
                     true);
    }
    if (error.category() == http::make_error_code(http::error::bad_target).category() &&
        error != http::error::end_of_stream && error != http::error::partial_message) {
      return respond(http::status::bad_request, error_body("bad_request", error.message()), true);
    }
    close();  // end of stream, timeout, reset: nothing to answer
  }

  // The body lies in buffer_ (body_bytes_ of it, consumed once the response is written) or,
  // read by the parser, in the message.
  void on_request(bool body_in_buffer) {
    request_ = parser_->release();
    parser_.reset();
    body_ = body_in_buffer ? std::string_view(static_cast<const char*>(buffer_.data().data()), body_bytes_)
                           : std::string_view(request_.body());
    handle();
  }

  void handle() {
    catalog_ = listener_.context_.catalog.current();
    const std::string_view target = view(request_.target());
    const std::string_view path = target.substr(0, target.find('?'));
    const http::verb method = request_.method();
    if (path == "/v1/telemetry") {
      if (method != http::verb::post) return method_not_allowed("POST");
      return telemetry(nullptr, {});
    }
    if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
      if (method != http::verb::get && method != http::verb::head) return method_not_allowed("GET, HEAD");
      if (path == "/healthz") return respond(http::status::ok, "ok\n", false, "text/plain");
      if (path == "/readyz") {
        const bool ready = listener_.accepting() && listener_.context_.sink.ready();
        return respond(ready ? http::status::ok : http::status::service_unavailable, ready ? "ready\n" : "not ready\n",
                       false, "text/plain");
      }
      return respond(http::status::ok, listener_.context_.metrics.render(), false, "text/plain; version=0.0.4");
    }
    if (path.starts_with("/admin/")) return admin();
    // A device type's own route: <path> (bearer, basic) or <path>/<token> (path_token).
    if (const DeviceTypeVersion* type = catalog_->by_http_path(path)) {
      if (type->definition.http->auth == HttpAuth::path_token) {
        return respond(http::status::unauthorized, error_body("unauthenticated", "put the device token in the URL: " +
                                                                                   std::string(path) + "/<token>"));
      }
      return device_type_route(*type, {});
    }
    const std::size_t last_slash = path.rfind('/');
    if (last_slash != std::string_view::npos && last_slash > 0) {
      const DeviceTypeVersion* type = catalog_->by_http_path(path.substr(0, last_slash));
      if (type && type->definition.http->auth == HttpAuth::path_token) {
        return device_type_route(*type, path.substr(last_slash + 1));
      }
    }
    respond(http::status::not_found, error_body("not_found", "no such path: " + std::string(path.substr(0, 128))));
  }

  void device_type_route(const DeviceTypeVersion& type, std::string_view path_token) {
    const http::verb method = request_.method();
    if (method != http::verb::post && method != http::verb::get) return method_not_allowed("GET, POST");
    telemetry(&type, path_token);
  }

  void admin() {
    // Copies: the request buffer is reused for the next request while the admin pool works.
    auto request = std::make_shared<std::array<std::string, 5>>(std::array<std::string, 5>{
        std::string(view(request_.method_string())), std::string(view(request_.target())),
        std::string(view(request_[http::field::authorization])), std::string(view(request_[http::field::content_type])),
        std::string(body_)});
    deadline_ = kNoDeadline;  // nothing is read or written while the admin pool works
    asio::post(*worker_.admin, [self = this->shared_from_this(), request] {
      const auto& [method, target, authorization, content_type, body] = *request;
      AdminReply reply = handle_admin_request(self->listener_.context_.catalog, self->listener_.context_.config.admin,
                                              AdminRequest{method, target, authorization, content_type, body},
                                              &self->listener_.context_.metrics);
      asio::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
        if (reply.status == 401) self->response_extra_ = {http::field::www_authenticate, "Bearer realm=\"telegate-admin\""};
        self->respond(static_cast<http::status>(reply.status), std::move(reply.body));
      });
    });
  }

  void method_not_allowed(std::string_view allow) {
    response_extra_ = {http::field::allow, std::string(allow)};
    respond(http::status::method_not_allowed, error_body("method_not_allowed", "use " + std::string(allow)));
  }

  // POST /v1/telemetry (type == nullptr: bearer token, body as sent) or a device type's own
  // route, where a GET's query string — or a POST's, when its body is empty, as Traccar Client
  // sends it — is the payload, as a form.
  void telemetry(const DeviceTypeVersion* type, std::string_view path_token) {
    const ProtocolMetrics& metrics = listener_.context_.metrics.protocol(envelope::SourceProtocol::http);
    if (listener_.stopping_) {
      response_extra_ = {http::field::retry_after, "1"};
      return respond(http::status::service_unavailable, error_body("stopping", "the gateway is shutting down"), true);
    }
    const std::string_view authorization = view(request_[http::field::authorization]);
    const HttpAuth auth = type ? type->definition.http->auth : HttpAuth::bearer;
    std::string basic_token;
    std::string_view token;
    if (auth == HttpAuth::path_token) {
      token = path_token;
    } else if (auth == HttpAuth::basic) {
      basic_token = basic_password(authorization);
      token = basic_token;
    } else {
      token = credentials(authorization, "bearer ");
    }
    // Without a token, a verified client certificate names the device (docs/security.md).
    const DeviceIdentity* device = catalog_->devices().authenticate(token);
    if (!device && token.empty() && !peer_identity_.empty() && auth != HttpAuth::path_token) {
      if (auto entry = catalog_->devices().by_psk_identity(peer_identity_)) device = entry->device;
    }
    if (!device) {
      metrics.reject(RejectReason::unauthenticated, 1);
      if (auth != HttpAuth::path_token) {
        response_extra_ = {http::field::www_authenticate,
                           auth == HttpAuth::basic ? "Basic realm=\"telegate\"" : "Bearer realm=\"telegate\""};
      }
      return respond(http::status::unauthorized,
                     error_body("unauthenticated", token.empty() ? "device credentials are required" +
                                                                       std::string(auth == HttpAuth::bearer ? " (Authorization: Bearer <device token>)" : "")
                                                                 : "the credentials match no device"));
    }
    if (type && device->device_type != type->definition.name) {
      metrics.reject(RejectReason::forbidden, 1);
      return respond(http::status::forbidden,
                     error_body("forbidden", "device '" + device->device_id + "' is of type " + device->device_type +
                                                 ", not " + type->definition.name + " served at this path"));
    }
    std::string_view content_type = view(request_[http::field::content_type]);
    std::string_view body = body_;
    const std::string_view target = view(request_.target());
    const std::size_t question = target.find('?');
    if (type && body.empty() && question != std::string_view::npos) {
      body = target.substr(question + 1);
      content_type = "application/x-www-form-urlencoded";
    }
    ++listener_.in_flight_;
    in_flight_ = true;
    deadline_ = kNoDeadline;  // nothing is read or written while the sink works
    auto immediate = worker_.pipeline->ingest(
        IngestRequest{*catalog_, *device, content_type, body, envelope::SourceProtocol::http},
        [self = this->shared_from_this()](IngestOutcome outcome) {
          // To the io_context itself, the session's thread: the stream's type-erased executor
          // would wrap the handler in one more heap object per request.
          asio::post(self->worker_.io,
                     [self, outcome = std::move(outcome)]() mutable { self->answer(std::move(outcome)); });
        });
    if (immediate) answer(std::move(*immediate));
  }

  void answer(IngestOutcome outcome) {
    catalog_.reset();
    if (outcome.status == IngestStatus::accepted && outcome.native_reply) {
      return respond(http::status::ok, std::string(outcome.native_reply->body), false, outcome.native_reply->content_type);
    }
    const StatusMapping mapping = map_status(outcome.status);
    const bool per_record = outcome.status == IngestStatus::accepted ||
                            outcome.status == IngestStatus::partially_accepted ||
                            outcome.status == IngestStatus::all_rejected;
    if (mapping.status == http::status::service_unavailable || mapping.status == http::status::too_many_requests) {
      response_extra_ = {http::field::retry_after,
                         std::to_string(retry_after(outcome, listener_.context_.config.admission).count())};
    }
    if (!per_record) return respond(mapping.status, error_body(mapping.code, outcome.message, outcome.offset));
    // The previous response's body is written by now: its buffer is reused.
    std::string body = std::move(response_body_);
    body.clear();
    append_outcome_body(outcome, body);
    respond(mapping.status, std::move(body));
  }

  // The head is written here rather than by Beast's serializer, whose buffer-sequence machinery
  // and one heap field per header cost ~1.5 µs per request; the bytes are those it wrote (fields
  // in the same order). Head and body go out in one gather write.
  void respond(http::status status, std::string body, bool close_after = false,
               std::string_view content_type = "application/json") {
    listener_.context_.metrics.protocol(envelope::SourceProtocol::http)
        .requests_with_status(static_cast<int>(status))
        .Increment();
    const bool keep_alive = !close_after && !listener_.stopping_ && request_.keep_alive();
    response_body_ = std::move(body);
    if (request_.method() == http::verb::head) response_body_.clear();
    response_head_.assign("HTTP/1.1 ");
    envelope::append_decimal(response_head_, static_cast<std::size_t>(status));
    response_head_.append(" ").append(view(http::obsolete_reason(status)));
    response_head_.append("\r\nServer: telegate\r\nContent-Type: ").append(content_type).append("\r\n");
    if (response_extra_.second.size()) {
      response_head_.append(view(http::to_string(response_extra_.first))).append(": ").append(response_extra_.second);
      response_head_.append("\r\n");
    }
    response_extra_ = {};
    if (!keep_alive) response_head_.append("Connection: close\r\n");
    response_head_.append("Content-Length: ");
    envelope::append_decimal(response_head_, response_body_.size());
    response_head_.append("\r\n\r\n");
    set_deadline(request_deadline_);
    const std::array<asio::const_buffer, 2> response{asio::buffer(response_head_), asio::buffer(response_body_)};
    asio::async_write(stream_, response, [self = this->shared_from_this(), keep_alive](beast::error_code error, std::size_t) {
      self->finish_request();
      if (error || !keep_alive) return self->close();
      self->next_request();
    });
  }

  // What follows the body in buffer_ belongs to the next request. The buffer keeps its size
  // (a device's next request is about as large and is then read in one go) up to
  // kKeptBufferBytes, the most an idle connection holds.
  void next_request() {
    buffer_.consume(body_bytes_);
    body_bytes_ = 0;
    body_ = {};
    if (buffer_.capacity() > kKeptBufferBytes) buffer_.shrink_to_fit();
    request_ = {};
    read_request();
  }

  void finish_request() {
    if (in_flight_) {
      in_flight_ = false;
      --listener_.in_flight_;
    }
  }

  void close() {
    finish_request();
    deadline_timer_.cancel();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
    slot_ = {};  // the place under the connection caps is free now, not when the last handler runs
  }

  Stream stream_;
  HttpListener& listener_;
  HttpListener::Worker& worker_;
  ConnectionLimiter::Slot slot_;
  std::shared_ptr<asio::ssl::context> tls_context_;  // the context this connection was made with, kept alive
  std::string peer_identity_;  // CN of a verified client certificate (TLS), else empty
  beast::flat_buffer buffer_;
  std::size_t body_bytes_ = 0;  // of buffer_: the current request's body (read without the parser)
  std::string_view body_;       // the current request's body, in buffer_ or request_
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  std::string response_head_;  // the status line and headers being written (kept: its capacity is reused)
  std::string response_body_;  // the body being written; after the write, the next reply's buffer
  std::pair<http::field, std::string> response_extra_{http::field::unknown, {}};
  std::shared_ptr<const Catalog> catalog_;  // the snapshot the current request authenticated against
  bool in_flight_ = false;
  asio::steady_timer deadline_timer_;
  Clock::duration stride_;  // the longest the timer waits before it looks at deadline_ again
  Clock::time_point deadline_ = kNoDeadline;          // of the phase in progress
  Clock::time_point request_deadline_ = kNoDeadline;  // of the current request, its response included
  bool deadline_armed_ = false;
};

HttpListener::HttpListener(const ListenerContext& context)
    : context_(context),
      limiter_(std::make_unique<ConnectionLimiter>("http", context.config.http.limits, context.metrics.registry())) {}

HttpListener::~HttpListener() {
  if (started_ && !stopping_) stop(std::chrono::milliseconds(0));
}

void HttpListener::start() {
  const HttpListenerConfig& config = context_.config.http;
  if (config.tls.enabled()) tls_ = std::make_unique<TlsContextHolder>(config.tls, "http.tls", &context_.metrics.registry());
  port_ = config.port;
  tls_port_ = config.tls.port;
  for (std::size_t i = 0; i < config.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->pipeline = context_.pipeline.make_worker();
    worker->admin = std::make_unique<asio::thread_pool>(1);
    tcp::acceptor& acceptor = worker->acceptor.emplace(worker->io);
    open_reuseport_acceptor(acceptor, config.address, port_, "http.port");
    port_ = acceptor.local_endpoint().port();  // with port 0, every other acceptor joins this one
    if (tls_) {
      tcp::acceptor& tls_acceptor = worker->tls_acceptor.emplace(worker->io);
      open_reuseport_acceptor(tls_acceptor, config.address, tls_port_, "http.tls.port");
      tls_port_ = tls_acceptor.local_endpoint().port();
    }
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    accept(*worker, *worker->acceptor, false);
    if (worker->tls_acceptor) accept(*worker, *worker->tls_acceptor, true);
    worker->thread = std::thread([&io = worker->io] { io.run(); });
  }
  if (!tls_) tls_port_ = 0;
  started_ = true;
  spdlog::info("http: listening on {}:{}{} with {} threads", config.address, port_,
               tls_ ? " and TLS on " + std::to_string(tls_port_) : std::string(), config.threads);
}

void HttpListener::accept(Worker& worker, tcp::acceptor& acceptor, bool tls) {
  acceptor.async_accept(worker.io, [this, &worker, &acceptor, tls](beast::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!error) {
      if (auto slot = limiter_->admit(socket)) {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (tls) {
          auto context = tls_->current();
          auto stream = TlsStream(std::move(socket), *context);
          std::make_shared<HttpSession<TlsStream>>(std::move(stream), *this, worker, std::move(*slot), std::move(context))
              ->handshake();
        } else {
          std::make_shared<HttpSession<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), *this, worker,
                                                           std::move(*slot))
              ->read_request();
        }
      }
    } else if (error == asio::error::no_descriptors) {
      spdlog::warn("http: cannot accept: {} (raise the open-file limit)", error.message());
    }
    accept(worker, acceptor, tls);
  });
}

void HttpListener::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopping_.exchange(true)) return;
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker] {
      beast::error_code ignored;
      worker->acceptor->close(ignored);
      if (worker->tls_acceptor) worker->tls_acceptor->close(ignored);
    });
  }
  resume();  // parked sessions get their 503 "stopping" answers instead of hanging
  const auto deadline = Clock::now() + grace;
  while (in_flight_ > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (in_flight_ > 0) spdlog::warn("http: {} requests still unanswered after the grace period", in_flight_.load());
  for (auto& worker : workers_) worker->admin->join();
  for (auto& worker : workers_) worker->io.stop();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void HttpListener::pause() { paused_ = true; }

void HttpListener::resume() {
  if (!paused_.exchange(false)) return;
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker] {
      auto parked = std::move(worker->parked);
      worker->parked.clear();
      for (auto& read_request : parked) read_request();
    });
  }
}

}  // namespace telegate::gateway
