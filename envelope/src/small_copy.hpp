// Copies of the short strings an envelope is made of (ids, tenant, topic pieces): inline, with
// at most two overlapping loads and stores, where a libc memcpy call per string was a third of
// the sealing profile.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace telegate::envelope {

// Writes `text` at `at` and returns the end; writes nothing past it.
inline char* copy_text(char* at, std::string_view text) {
  const char* from = text.data();
  const std::size_t size = text.size();
  const auto pair = [&]<class Word>(Word) {
    Word head, tail;
    std::memcpy(&head, from, sizeof head);
    std::memcpy(&tail, from + size - sizeof tail, sizeof tail);
    std::memcpy(at, &head, sizeof head);
    std::memcpy(at + size - sizeof tail, &tail, sizeof tail);
  };
  if (size > 16) {
    std::memcpy(at, from, size);
  } else if (size >= 8) {
    pair(std::uint64_t{});
  } else if (size >= 4) {
    pair(std::uint32_t{});
  } else {
    for (std::size_t i = 0; i < size; ++i) at[i] = from[i];
  }
  return at + size;
}

// out = text, with copy_text's inline copy instead of std::string::assign's memmove call.
inline void assign_text(std::string& out, std::string_view text) {
  out.resize_and_overwrite(text.size(), [&](char* data, std::size_t) {
    copy_text(data, text);
    return text.size();  // not the second argument: libstdc++ 12 passes the grown capacity there
  });
}

}  // namespace telegate::envelope
