// The HTTP listener's reading of request bodies, byte by byte on a raw socket against the real
// telegate binary (local log sink: no broker needed). A body with a Content-Length is read
// straight into the connection's buffer and handed to the pipeline from there; chunked bodies
// go through Beast's parser. Whatever way the bytes arrive — headers and body split across many
// small TCP segments, two requests in one segment, a body that never completes — every request
// must be decoded whole and answered in order, and the limits must answer as before.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gateway_process.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using namespace telegate::testing;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxBodyBytes = 256 << 10;
// Above the 64 KiB field name that Beast's field container refuses by throwing.
constexpr std::size_t kMaxHeaderBytes = 128 << 10;

std::string config() {
  return "instance_id: it-http-wire\n"
         "http: {max_body_bytes: " + std::to_string(kMaxBodyBytes) + ", max_header_bytes: " +
         std::to_string(kMaxHeaderBytes) + ", request_timeout_s: 2}\n"
         "sink: {type: local_log, local_log: {directory: data/log}}\n"
         "decode: {max_records: 5000}\n"
         "device_types:\n"
         "  - {name: tracker, codec: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n";
}

// A JSON array of `count` location records with msg_ids <prefix>-<i>.
std::string records(const std::string& prefix, int count) {
  std::string body = "[";
  for (int i = 0; i < count; ++i) {
    body += (i ? "," : "") + std::string(R"({"device_id":"truck-1","type":"location","ts":)") + std::to_string(unix_ms()) +
            R"(,"msg_id":")" + prefix + "-" + std::to_string(i) + R"(","lat":46.05,"lon":14.51})";
  }
  return body + "]";
}

std::string post(const std::string& body, const std::string& framing = "") {
  return "POST /v1/telemetry HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer truck-1-token\r\n"
         "Content-Type: application/json\r\n" +
         (framing.empty() ? "Content-Length: " + std::to_string(body.size()) + "\r\n" : framing) + "\r\n" + body;
}

// Sends `bytes` in pieces of `piece` bytes with a pause between them, so that each piece is a
// TCP segment of its own and the gateway sees the request arrive in many reads.
void send_in_pieces(int fd, const std::string& bytes, std::size_t piece, std::chrono::microseconds pause) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    const std::size_t size = std::min(piece, bytes.size() - at);
    REQUIRE(::send(fd, bytes.data() + at, size, MSG_NOSIGNAL) == static_cast<ssize_t>(size));
    if (pause.count()) std::this_thread::sleep_for(pause);
  }
}

struct Response {
  int status = 0;
  std::string body;
};

// Reads `count` responses (each with a Content-Length) within `limit`; fewer when the gateway
// closes the connection or the time is up.
std::vector<Response> read_responses(int fd, std::size_t count, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::vector<Response> responses;
  std::string bytes;
  const auto deadline = Clock::now() + limit;
  while (responses.size() < count && Clock::now() < deadline) {
    const std::size_t header_end = bytes.find("\r\n\r\n");
    if (header_end != std::string::npos) {
      const std::size_t length_at = bytes.find("Content-Length: ");
      REQUIRE(length_at < header_end);
      std::size_t length = 0;
      std::from_chars(bytes.data() + length_at + 16, bytes.data() + header_end, length);
      if (bytes.size() >= header_end + 4 + length) {
        Response response;
        std::from_chars(bytes.data() + 9, bytes.data() + 12, response.status);
        response.body = bytes.substr(header_end + 4, length);
        responses.push_back(std::move(response));
        bytes.erase(0, header_end + 4 + length);
        continue;
      }
    }
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 100) <= 0) continue;
    char chunk[16384];
    const ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
    if (got <= 0) break;
    bytes.append(chunk, static_cast<std::size_t>(got));
  }
  return responses;
}

bool accepted(const Response& response, int records) {
  return response.status == 200 &&
         response.body.find("\"accepted\":" + std::to_string(records) + ",") != std::string::npos;
}

// True when the gateway closes `fd` within `limit` without answering.
bool closed_silently(int fd, std::chrono::milliseconds limit) {
  pollfd readable{fd, POLLIN, 0};
  if (::poll(&readable, 1, static_cast<int>(limit.count())) != 1) return false;
  char byte = 0;
  return ::recv(fd, &byte, 1, 0) <= 0;
}

}  // namespace

TEST_CASE("HTTP bodies arrive whole however the bytes are cut, and the limits answer as before") {
  TempDir dir;
  GatewayProcess gateway(dir.path(), config());
  gateway.start();
  gateway.wait_ready();

  SUBCASE("a 60 KB body sent in 700-byte segments, then requests larger and smaller on the same connection") {
    const int fd = connect_tcp(gateway.port());
    const std::string first = records("seg", 600);
    REQUIRE(first.size() > 60'000);
    send_in_pieces(fd, post(first), 700, std::chrono::microseconds(200));
    auto answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(accepted(answers[0], 600));
    CHECK(answers[0].body.find("\"seg-599\"") != std::string::npos);
    // Larger than the buffer a connection keeps between requests (64 KiB), then small again.
    for (const auto& [prefix, count] : {std::pair<std::string, int>{"large", 1500}, {"small", 3}, {"again", 600}}) {
      send_in_pieces(fd, post(records(prefix, count)), 1 << 20, {});
      answers = read_responses(fd, 1);
      REQUIRE(answers.size() == 1);
      CHECK(accepted(answers[0], count));
    }
    ::close(fd);
  }

  SUBCASE("two requests in one segment, then a third whose header and body arrive separately") {
    const int fd = connect_tcp(gateway.port());
    send_in_pieces(fd, post(records("pipe-a", 3)) + post(records("pipe-b", 2)), 1 << 20, {});
    const std::string third = post(records("pipe-c", 4));
    const std::size_t header_end = third.find("\r\n\r\n") + 4;
    send_in_pieces(fd, third.substr(0, header_end), 1 << 20, std::chrono::milliseconds(50));
    send_in_pieces(fd, third.substr(header_end), 1 << 20, {});
    const auto answers = read_responses(fd, 3);
    REQUIRE(answers.size() == 3);
    CHECK(accepted(answers[0], 3));
    CHECK(answers[0].body.find("pipe-a-2") != std::string::npos);
    CHECK(accepted(answers[1], 2));
    CHECK(answers[1].body.find("pipe-b-1") != std::string::npos);
    CHECK(accepted(answers[2], 4));
    ::close(fd);
  }

  SUBCASE("chunked bodies are read by the parser, within the same limit") {
    const std::string body = records("chunked", 5);
    const std::size_t half = body.size() / 2;
    auto hex = [](std::size_t n) {
      char text[16];
      return std::string(text, std::to_chars(text, text + sizeof(text), n, 16).ptr);
    };
    const int fd = connect_tcp(gateway.port());
    send_in_pieces(fd,
                   post(hex(half) + "\r\n" + body.substr(0, half) + "\r\n" + hex(body.size() - half) + "\r\n" +
                            body.substr(half) + "\r\n0\r\n\r\n",
                        "Transfer-Encoding: chunked\r\n"),
                   97, std::chrono::microseconds(100));
    auto answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(accepted(answers[0], 5));
    const std::string too_big(kMaxBodyBytes + 1, ' ');
    send_in_pieces(fd, post(hex(too_big.size()) + "\r\n" + too_big + "\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"),
                   1 << 20, {});
    answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == 413);
    CHECK(answers[0].body.find("http.max_body_bytes") != std::string::npos);
    ::close(fd);
  }

  SUBCASE("a field name over 64 KiB, in the header or a chunked trailer: 400, and the gateway lives on") {
    const std::string name(70'000, 'x');
    const std::string chunked = "Transfer-Encoding: chunked\r\n";
    const std::vector<std::string> requests = {
        post("", chunked + name + ": v\r\n") + "0\r\n\r\n",                  // a header field
        post("5\r\nhello\r\n0\r\n" + name + ": v\r\n\r\n", chunked)};     // a trailer field
    for (const std::string& request : requests) {
      const int fd = connect_tcp(gateway.port());
      send_in_pieces(fd, request, 1 << 20, {});
      const auto answers = read_responses(fd, 1);
      REQUIRE(answers.size() == 1);
      CHECK(answers[0].status == 400);
      CHECK(answers[0].body.find("field name too large") != std::string::npos);
      ::close(fd);
      CHECK(curl_get(gateway.url("/healthz")).status == 200);
    }
  }

  SUBCASE("a chunked trailer that grows past http.max_header_bytes: 431, as for the header") {
    std::string trailer;
    while (trailer.size() <= kMaxHeaderBytes) trailer += "X-Trailer: " + std::string(100, 't') + "\r\n";
    const int fd = connect_tcp(gateway.port());
    // Without the blank line that would end it: the gateway must give up, not keep reading.
    send_in_pieces(fd, post("5\r\nhello\r\n0\r\n" + trailer, "Transfer-Encoding: chunked\r\n"), 1 << 20, {});
    const auto answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == 431);
    CHECK(answers[0].body.find("http.max_header_bytes") != std::string::npos);
    ::close(fd);
  }

  SUBCASE("a Content-Length over http.max_body_bytes: 413 before any of the body is sent") {
    const int fd = connect_tcp(gateway.port());
    const std::string request = post(std::string(kMaxBodyBytes + 1, ' '));
    send_in_pieces(fd, request.substr(0, request.find("\r\n\r\n") + 4), 1 << 20, {});
    const auto answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == 413);
    CHECK(answers[0].body.find("http.max_body_bytes (262144 bytes)") != std::string::npos);
    CHECK(closed_silently(fd, std::chrono::seconds(2)));
    ::close(fd);
  }

  SUBCASE("a body that stops short of its Content-Length is cut at request_timeout_s, unanswered") {
    const int fd = connect_tcp(gateway.port());
    const std::string request = post(records("short", 10));
    send_in_pieces(fd, request.substr(0, request.size() - 10), 1 << 20, {});
    CHECK(closed_silently(fd, std::chrono::seconds(4)));
    ::close(fd);
  }

  SUBCASE("Expect: 100-continue, then the body") {
    const int fd = connect_tcp(gateway.port());
    const std::string body = records("continue", 2);
    const std::string request = post(body, "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n");
    send_in_pieces(fd, request.substr(0, request.size() - body.size()), 1 << 20, {});
    char interim[64] = {};
    pollfd readable{fd, POLLIN, 0};
    REQUIRE(::poll(&readable, 1, 3000) == 1);
    CHECK(std::string(interim, static_cast<std::size_t>(std::max<ssize_t>(0, ::recv(fd, interim, 25, 0))))
              .starts_with("HTTP/1.1 100 Continue"));
    send_in_pieces(fd, body, 1 << 20, {});
    const auto answers = read_responses(fd, 1);
    REQUIRE(answers.size() == 1);
    CHECK(accepted(answers[0], 2));
    ::close(fd);
  }

  SUBCASE("response heads, byte for byte: status line, then Server, Content-Type, an extra field, Connection, Content-Length") {
    // The listener writes heads itself (not Beast's serializer): the bytes must stay those Beast wrote.
    const auto exchange = [&](const std::string& request) {
      const int fd = connect_tcp(gateway.port());
      send_in_pieces(fd, request, 1 << 20, {});
      std::string bytes;
      char chunk[4096];
      pollfd readable{fd, POLLIN, 0};
      while (::poll(&readable, 1, 3000) == 1) {
        const ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
        if (got <= 0) break;
        bytes.append(chunk, static_cast<std::size_t>(got));
        if (bytes.find("\r\n\r\n") != std::string::npos) break;
      }
      ::close(fd);
      return bytes.substr(0, bytes.find("\r\n\r\n") + 4);
    };
    const std::string body = records("head", 1);
    const std::string msg_id = R"("head-0")";
    CHECK(exchange(post(body)) == "HTTP/1.1 200 OK\r\nServer: telegate\r\nContent-Type: application/json\r\nContent-Length: " +
                                      std::to_string(std::string(R"({"accepted":1,"rejected":0,"errors":[],"msg_ids":[)").size() +
                                                     msg_id.size() + 2) +
                                      "\r\n\r\n");
    CHECK(exchange("PUT /v1/telemetry HTTP/1.1\r\nHost: gateway\r\nContent-Length: 0\r\n\r\n") ==
          "HTTP/1.1 405 Method Not Allowed\r\nServer: telegate\r\nContent-Type: application/json\r\nAllow: POST\r\n"
          "Content-Length: 51\r\n\r\n");
    CHECK(exchange("GET /healthz HTTP/1.0\r\n\r\n") ==
          "HTTP/1.1 200 OK\r\nServer: telegate\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 3\r\n\r\n");
    CHECK(exchange("HEAD /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n") ==
          "HTTP/1.1 200 OK\r\nServer: telegate\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
  }

  CHECK(curl_get(gateway.url("/healthz")).status == 200);
}
