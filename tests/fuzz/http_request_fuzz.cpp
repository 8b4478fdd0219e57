// Fuzz target for HTTP/1.1 request framing as the HTTP listener reads it: Beast's request
// parser with the listener's header and body limits reads the header; a body with a
// Content-Length is then taken as that many raw bytes (HttpSession::read_body), any other body
// (chunked, to the end) is read by the parser (what any TCP or TLS peer can send).
//
// The input is a byte stream as a socket would deliver it. It is framed whole, and again in
// pseudo-random chunks derived from the input (down to 1 byte, as a slowloris client sends):
// both must accept or both refuse, and an accepted request must have the same method, target,
// headers and body — the same as Beast's parser alone makes of the input. Crashes, sanitizer
// reports and __builtin_trap() are findings.
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace http = boost::beast::http;

namespace {

constexpr std::uint32_t kHeaderLimit = 4096;
constexpr std::uint64_t kBodyLimit = 65536;

// The request as framed (method, target, every field and the body), or nothing when the
// parser refused the input (or threw, which the listener answers with 400) or it ended before a
// whole request. Like the listener, the parser is given at most kHeaderLimit bytes at a time and
// a request is refused when it needs more than that. raw_body: the listener's way with a
// Content-Length body; otherwise Beast's parser reads every body.
template <typename NextChunk>
std::optional<std::string> parse(std::string_view input, NextChunk next_chunk, bool raw_body) try {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(!raw_body);  // the listener reads the header alone first
  std::string pending;
  std::size_t offset = 0;
  boost::system::error_code error;
  std::optional<std::size_t> length;  // raw_body: the Content-Length, once the header is read
  while (!parser.is_done() && !(length && pending.size() >= *length)) {
    while (!length && !parser.is_done() && !pending.empty()) {
      const std::size_t used = parser.put(boost::asio::buffer(pending.data(), std::min<std::size_t>(pending.size(), kHeaderLimit)), error);
      pending.erase(0, used);
      if (error && error != http::error::need_more) return std::nullopt;
      if (raw_body && parser.is_header_done() && !parser.is_done()) {
        if (const auto content_length = parser.content_length()) {
          length = static_cast<std::size_t>(*content_length);
          break;
        }
        parser.eager(true);  // chunked: the parser reads it
      }
      if (used == 0) break;
    }
    if (parser.is_done() || (length && pending.size() >= *length)) break;
    if (!length && pending.size() >= kHeaderLimit) return std::nullopt;  // needs more than a window
    if (offset == input.size()) {
      if (length) return std::nullopt;  // the connection closed before the whole body came
      parser.put_eof(error);
      break;
    }
    const std::size_t chunk = std::min(next_chunk(), input.size() - offset);
    pending.append(input.substr(offset, chunk));
    offset += chunk;
  }
  if (!length && (error || !parser.is_done())) return std::nullopt;
  const auto& request = parser.get();
  std::string text = std::string(request.method_string()) + ' ' + std::string(request.target()) + '\n';
  for (const auto& field : request) text += std::string(field.name_string()) + ": " + std::string(field.value()) + '\n';
  return text + (length ? pending.substr(0, *length) : request.body());
} catch (const std::exception&) {
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto whole = parse(input, [&] { return size; }, true);
  std::uint32_t state = 2166136261u;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 16); ++i) state = (state ^ data[i]) * 16777619u;
  const auto split = parse(input, [&] {
    state = state * 1103515245u + 12345u;
    return std::size_t{1} + (state >> 16) % 64;
  }, true);
  // How the bytes arrive must not change what is accepted, nor what it means; taking a
  // Content-Length body raw must not either.
  if (whole != split) __builtin_trap();
  if (whole != parse(input, [&] { return size; }, false)) __builtin_trap();
  return 0;
}
