#include "http/http_listener.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>
#include <thread>

namespace telegate::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

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
    case IngestStatus::unsupported_media_type: return {http::status::unsupported_media_type, "unsupported_media_type"};
    case IngestStatus::forbidden: return {http::status::forbidden, "forbidden"};
    case IngestStatus::overloaded: return {http::status::service_unavailable, "overloaded"};
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

std::string outcome_body(const IngestOutcome& outcome) {
  std::string body;
  body.reserve(64 + outcome.msg_ids.size() * 40 + outcome.errors.size() * 96);
  body += "{\"accepted\":" + std::to_string(outcome.accepted) + ",\"rejected\":" + std::to_string(outcome.errors.size());
  body += ",\"errors\":[";
  for (std::size_t i = 0; i < outcome.errors.size(); ++i) {
    const codecs::FieldError& error = outcome.errors[i];
    body += i ? ",{\"index\":" : "{\"index\":";
    body += std::to_string(error.index);
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
  return body;
}

std::string_view view(beast::string_view text) { return {text.data(), text.size()}; }

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  authorization.remove_prefix(kScheme.size());
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  while (!authorization.empty() && authorization.back() == ' ') authorization.remove_suffix(1);
  return authorization;
}

}  // namespace

struct HttpListener::Worker {
  asio::io_context io{1};
  std::optional<tcp::acceptor> acceptor;
  std::unique_ptr<PipelineWorker> pipeline;
  // Sessions waiting for resume(). Owned here: a parked session has no pending operation to
  // keep it alive, and dropping it would reset the device's connection.
  std::vector<std::shared_ptr<HttpSession>> parked;
  std::thread thread;
};

// One keep-alive connection. Owned by shared_ptrs held by its pending asynchronous operations
// (and, while a telemetry request waits for the sink, by that completion); runs only on its
// Worker's thread — sink completions are posted there.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, HttpListener& listener, HttpListener::Worker& worker)
      : stream_(std::move(socket)), listener_(listener), worker_(worker) {}

  void read_request() {
    if (listener_.paused_) {
      worker_.parked.push_back(shared_from_this());
      return;
    }
    parser_.emplace();
    parser_->body_limit(listener_.context_.config.http.max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(listener_.context_.config.http.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code error, std::size_t) { self->on_header(error); });
  }

 private:
  void on_header(beast::error_code error) {
    if (error) return on_read_error(error);
    stream_.expires_after(listener_.context_.config.http.request_timeout);
    const auto& header = parser_->get();
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      // curl asks before sending large bodies; answering saves it a one-second wait.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code write_error, std::size_t) {
                          if (write_error) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) { self->on_read(error); });
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
                     error_body("headers_too_large", "request headers exceed 16 KiB"), true);
    }
    if (error.category() == http::make_error_code(http::error::bad_target).category() &&
        error != http::error::end_of_stream && error != http::error::partial_message) {
      return respond(http::status::bad_request, error_body("bad_request", error.message()), true);
    }
    close();  // end of stream, timeout, reset: nothing to answer
  }

  void on_read(beast::error_code error) {
    if (error) return on_read_error(error);
    request_ = parser_->release();
    parser_.reset();
    handle();
  }

  void handle() {
    const std::string_view target = view(request_.target());
    const std::string_view path = target.substr(0, target.find('?'));
    const http::verb method = request_.method();
    if (path == "/v1/telemetry") {
      if (method != http::verb::post) return method_not_allowed("POST");
      return telemetry();
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
    respond(http::status::not_found, error_body("not_found", "no such path: " + std::string(path.substr(0, 128))));
  }

  void method_not_allowed(std::string_view allow) {
    response_extra_ = {http::field::allow, std::string(allow)};
    respond(http::status::method_not_allowed, error_body("method_not_allowed", "use " + std::string(allow)));
  }

  void telemetry() {
    const ProtocolMetrics& metrics = listener_.context_.metrics.protocol(envelope::SourceProtocol::http);
    if (listener_.stopping_) {
      response_extra_ = {http::field::retry_after, "1"};
      return respond(http::status::service_unavailable, error_body("stopping", "the gateway is shutting down"), true);
    }
    const std::string_view authorization = view(request_[http::field::authorization]);
    const DeviceIdentity* device = listener_.context_.devices.authenticate(bearer_token(authorization));
    if (!device) {
      metrics.reject(RejectReason::unauthenticated, 1);
      response_extra_ = {http::field::www_authenticate, "Bearer realm=\"telegate\""};
      return respond(http::status::unauthorized,
                     error_body("unauthenticated", authorization.empty() ? "an Authorization: Bearer <device token> "
                                                                           "header is required"
                                                                         : "the bearer token matches no device"));
    }
    ++listener_.in_flight_;
    in_flight_ = true;
    const std::string_view content_type = view(request_[http::field::content_type]);
    auto immediate = worker_.pipeline->ingest(
        IngestRequest{*device, content_type, request_.body(), envelope::SourceProtocol::http},
        [self = shared_from_this()](IngestOutcome outcome) {
          asio::post(self->stream_.get_executor(),
                     [self, outcome = std::move(outcome)]() mutable { self->answer(std::move(outcome)); });
        });
    if (immediate) answer(std::move(*immediate));
  }

  void answer(IngestOutcome outcome) {
    const StatusMapping mapping = map_status(outcome.status);
    const bool per_record = outcome.status == IngestStatus::accepted ||
                            outcome.status == IngestStatus::partially_accepted ||
                            outcome.status == IngestStatus::all_rejected;
    if (mapping.status == http::status::service_unavailable) {
      response_extra_ = {http::field::retry_after,
                         std::to_string(listener_.context_.config.admission.retry_after.count())};
    }
    respond(mapping.status,
            per_record ? outcome_body(outcome) : error_body(mapping.code, outcome.message, outcome.offset));
  }

  void respond(http::status status, std::string body, bool close_after = false,
               std::string_view content_type = "application/json") {
    listener_.context_.metrics.protocol(envelope::SourceProtocol::http)
        .requests_with_status(static_cast<int>(status))
        .Increment();
    response_ = {};
    response_.result(status);
    response_.version(11);
    response_.set(http::field::server, "telegate");
    response_.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    if (response_extra_.second.size()) response_.set(response_extra_.first, response_extra_.second);
    response_extra_ = {};
    const bool keep_alive = !close_after && !listener_.stopping_ && request_.keep_alive();
    response_.keep_alive(keep_alive);
    if (request_.method() != http::verb::head) response_.body() = std::move(body);
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this(), keep_alive](beast::error_code error, std::size_t) {
      self->finish_request();
      if (error || !keep_alive) return self->close();
      self->request_ = {};
      self->read_request();
    });
  }

  void finish_request() {
    if (in_flight_) {
      in_flight_ = false;
      --listener_.in_flight_;
    }
  }

  void close() {
    finish_request();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  HttpListener& listener_;
  HttpListener::Worker& worker_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  std::pair<http::field, std::string> response_extra_{http::field::unknown, {}};
  bool in_flight_ = false;
};

HttpListener::HttpListener(const ListenerContext& context) : context_(context) {}

HttpListener::~HttpListener() {
  if (started_ && !stopping_) stop(std::chrono::milliseconds(0));
}

void HttpListener::start() {
  const HttpListenerConfig& config = context_.config.http;
  const auto address = asio::ip::make_address(config.address);
  port_ = config.port;
  for (std::size_t i = 0; i < config.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->pipeline = context_.pipeline.make_worker();
    tcp::acceptor& acceptor = worker->acceptor.emplace(worker->io);
    const tcp::endpoint endpoint(address, port_);
    boost::system::error_code error;
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.set_option(ReusePort(true));
    acceptor.bind(endpoint, error);
    if (error) {
      throw std::runtime_error("http.port: cannot listen on " + config.address + ":" + std::to_string(port_) + ": " +
                               error.message());
    }
    acceptor.listen(asio::socket_base::max_listen_connections);
    port_ = acceptor.local_endpoint().port();  // with port 0, every other acceptor joins this one
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    accept(*worker);
    worker->thread = std::thread([&io = worker->io] { io.run(); });
  }
  started_ = true;
  spdlog::info("http: listening on {}:{} with {} threads", config.address, port_, config.threads);
}

void HttpListener::accept(Worker& worker) {
  worker.acceptor->async_accept(worker.io, [this, &worker](beast::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted || !worker.acceptor->is_open()) return;
    if (!error) {
      socket.set_option(tcp::no_delay(true));
      std::make_shared<HttpSession>(std::move(socket), *this, worker)->read_request();
    }
    accept(worker);
  });
}

void HttpListener::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopping_.exchange(true)) return;
  for (auto& worker : workers_) {
    asio::post(worker->io, [&worker] {
      beast::error_code ignored;
      worker->acceptor->close(ignored);
    });
  }
  resume();  // parked sessions get their 503 "stopping" answers instead of hanging
  const auto deadline = Clock::now() + grace;
  while (in_flight_ > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (in_flight_ > 0) spdlog::warn("http: {} requests still unanswered after the grace period", in_flight_.load());
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
      for (auto& session : parked) session->read_request();
    });
  }
}

}  // namespace telegate::gateway
