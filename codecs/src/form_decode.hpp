// application/x-www-form-urlencoded values, as query strings and form bodies carry them:
// shared by the codecs that read forms (osmand, mapping).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace telegate::codecs {

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one name or value into `out`, '+' being a space (HTML forms, and
// java.net.URLEncoder, which Android apps use). Returns where a malformed escape starts.
inline std::optional<std::size_t> form_decode(std::string_view raw, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= raw.size()) return i;
      const int high = hex_digit(raw[i + 1]), low = hex_digit(raw[i + 2]);
      if (high < 0 || low < 0) return i;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return std::nullopt;
}

}  // namespace telegate::codecs
