// Fuzz target for HTTP/1.1 request framing as the HTTP listener reads it: Beast's request
// parser with the listener's header and body limits (what any TCP or TLS peer can send).
//
// The input is a byte stream as a socket would deliver it. It is parsed whole, and again in
// pseudo-random chunks derived from the input (down to 1 byte, as a slowloris client sends):
// both must accept or both refuse, and an accepted request must have the same method, target,
// headers and body. Crashes, sanitizer reports and __builtin_trap() are findings.
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

// The request as parsed (method, target, every field and the body), or nothing when the
// parser refused the input or it ended before a whole request.
template <typename NextChunk>
std::optional<std::string> parse(std::string_view input, NextChunk next_chunk) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(true);
  std::string pending;
  std::size_t offset = 0;
  boost::system::error_code error;
  while (!parser.is_done()) {
    if (offset == input.size()) {
      parser.put_eof(error);
      break;
    }
    const std::size_t chunk = std::min(next_chunk(), input.size() - offset);
    pending.append(input.substr(offset, chunk));
    offset += chunk;
    const std::size_t used = parser.put(boost::asio::buffer(pending), error);
    pending.erase(0, used);
    if (error && error != http::error::need_more) return std::nullopt;
  }
  if (error || !parser.is_done()) return std::nullopt;
  const auto& request = parser.get();
  std::string text = std::string(request.method_string()) + ' ' + std::string(request.target()) + '\n';
  for (const auto& field : request) text += std::string(field.name_string()) + ": " + std::string(field.value()) + '\n';
  return text + request.body();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto whole = parse(input, [&] { return size; });
  std::uint32_t state = 2166136261u;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 16); ++i) state = (state ^ data[i]) * 16777619u;
  const auto split = parse(input, [&] {
    state = state * 1103515245u + 12345u;
    return std::size_t{1} + (state >> 16) % 64;
  });
  // How the bytes arrive must not change what is accepted, nor what it means.
  if (whole != split) __builtin_trap();
  return 0;
}
