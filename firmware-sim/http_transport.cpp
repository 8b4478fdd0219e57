#include "http_transport.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace telegate::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

HttpEndpoint resolve_http_endpoint(asio::io_context& io, const std::string& url, std::chrono::milliseconds timeout) {
  if (!url.starts_with("http://")) throw std::invalid_argument("--url must start with http://");
  const std::string rest = url.substr(7);
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::size_t colon = authority.rfind(':');
  HttpEndpoint endpoint{authority.substr(0, colon), colon == std::string::npos ? "80" : authority.substr(colon + 1),
                        slash == std::string::npos ? "/v1/telemetry" : rest.substr(slash), {}, timeout};
  endpoint.addresses = asio::ip::tcp::resolver(io).resolve(endpoint.host, endpoint.port);
  return endpoint;
}

namespace {

std::size_t number_after(const std::string& body, std::string_view name) {
  const std::size_t at = body.find(name);
  return at == std::string::npos ? 0 : std::strtoull(body.c_str() + at + name.size(), nullptr, 10);
}

// The msg_ids a telegate answer lists (a 207 lists the accepted records only). telegate-sim's
// and the gateway's msg_ids need no JSON unescaping.
void listed_msg_ids(const std::string& body, std::vector<std::string_view>& out) {
  const std::size_t list = body.find("\"msg_ids\":[");
  if (list == std::string::npos) return;
  const std::size_t end = body.find(']', list);
  for (std::size_t at = body.find('"', list + 11); at < end; at = body.find('"', at + 1)) {
    const std::size_t close = body.find('"', at + 1);
    if (close > end) break;
    out.emplace_back(body.data() + at + 1, close - at - 1);
    at = close;
  }
}

// One keep-alive connection, owned by one lane and used on the io_context thread (see
// Channel). Connects on the first send, and again on the next send after any failure.
class HttpChannel final : public Channel {
 public:
  HttpChannel(asio::io_context& io, const HttpEndpoint& endpoint) : stream_(io), endpoint_(endpoint) {}

  void send(const Batch& batch, std::function<void(const Outcome&)> done) override {
    done_ = std::move(done);
    batch_ = &batch;
    build_head(batch);
    if (connected_) return write();
    stream_.expires_after(endpoint_.timeout);
    stream_.async_connect(endpoint_.addresses, [this](beast::error_code error, auto) {
      if (error) return fail(OutcomeKind::connect_error);
      connected_ = true;
      write();
    });
  }

  void close() override {
    beast::error_code ignored;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    connected_ = false;
  }

 private:
  // The request head, written into a buffer reused from request to request; the body goes out
  // from the batch itself, head and body in one gathered write. A Beast request message copied
  // the ~50 KB body and rebuilt its header fields on the heap for every request.
  void build_head(const Batch& batch) {
    const WireFormat& format = *batch.format;
    const bool query = format.http_payload == HttpPayload::query;
    head_.clear();
    head_ += query ? "GET " : "POST ";
    head_ += format.http_path.empty() ? std::string_view(endpoint_.target) : format.http_path;
    if (format.http_auth == HttpAuth::path_token) head_.append("/").append(batch.token);
    if (query) head_.append("?").append(batch.body);
    head_.append(" HTTP/1.1\r\nHost: ").append(endpoint_.host).append("\r\n");
    if (!query) {
      char length[20];
      head_.append("Content-Type: ").append(format.content_type).append("\r\nContent-Length: ");
      head_.append(length, std::to_chars(length, length + sizeof length, batch.body.size()).ptr).append("\r\n");
    }
    if (format.http_auth == HttpAuth::bearer) head_.append("Authorization: Bearer ").append(batch.token).append("\r\n");
    if (format.http_auth == HttpAuth::basic) {
      // The user name is free text in the apps; the password is the device token.
      const std::string credentials = batch.device_id + ":" + batch.token;
      std::string encoded((credentials.size() + 2) / 3 * 4 + 1, '\0');
      encoded.resize(static_cast<std::size_t>(
          EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                          reinterpret_cast<const unsigned char*>(credentials.data()), static_cast<int>(credentials.size()))));
      head_.append("Authorization: Basic ").append(encoded).append("\r\n");
    }
    head_ += "\r\n";
  }

  void write() {
    sent_at_ = Clock::now();
    stream_.expires_after(endpoint_.timeout);
    const bool query = batch_->format->http_payload == HttpPayload::query;
    const std::array<asio::const_buffer, 2> request{asio::buffer(head_), asio::buffer(batch_->body.data(), query ? 0 : batch_->body.size())};
    asio::async_write(stream_, request, [this](beast::error_code error, std::size_t) {
      if (error) return fail(OutcomeKind::write_error);
      response_ = {};
      http::async_read(stream_, buffer_, response_, [this](beast::error_code read_error, std::size_t) {
        if (read_error) return fail(read_error == beast::error::timeout ? OutcomeKind::timeout : OutcomeKind::read_error);
        answered();
      });
    });
  }

  void answered() {
    Outcome outcome;
    outcome.status = response_.result_int();
    outcome.latency = Clock::now() - sent_at_;
    const std::string& body = response_.body();
    if (batch_->format->reply == ReplyStyle::native && outcome.status / 100 == 2) {
      outcome.accepted = batch_->records;
    } else {
      outcome.accepted = number_after(body, "\"accepted\":");
      outcome.rejected = number_after(body, "\"rejected\":");
      if (outcome.status / 100 == 2) {
        outcome.acknowledged.reserve(batch_->records);
        listed_msg_ids(body, outcome.acknowledged);
      }
    }
    if (!response_.keep_alive()) close();
    finish(outcome);
  }

  // A lost connection, a refused connect or a timeout: the socket is closed so that the next
  // send connects afresh.
  void fail(OutcomeKind kind) {
    close();
    Outcome outcome;
    outcome.kind = kind;
    outcome.latency = Clock::now() - sent_at_;
    finish(outcome);
  }

  void finish(const Outcome& outcome) {
    // Moved out first: `done` may send the next batch, which sets a new callback.
    auto done = std::move(done_);
    done(outcome);
  }

  beast::tcp_stream stream_;
  const HttpEndpoint& endpoint_;
  bool connected_ = false;
  const Batch* batch_ = nullptr;
  std::function<void(const Outcome&)> done_;
  Clock::time_point sent_at_;
  std::string head_;  // the request line and header fields of the batch being sent
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
};

}  // namespace

std::unique_ptr<Channel> make_http_channel(asio::io_context& io, const HttpEndpoint& endpoint) {
  return std::make_unique<HttpChannel>(io, endpoint);
}

}  // namespace telegate::sim
