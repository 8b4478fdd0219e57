// Chunk sizes for feeding a fuzz input to a stream decoder the way TCP might deliver it:
// derived from the input itself (FNV-1a seed, xorshift steps), so a finding replays exactly.
// Mostly small chunks (1 byte, up to 8, up to 64) with some up to 1024.
//
// frame_three_ways() runs a framer over the input whole, in these chunks and byte by byte,
// traps unless all three agree, and returns the whole-input result.
#pragma once

#include <cstddef>
#include <cstdint>

class InputSplits {
 public:
  InputSplits(const std::uint8_t* data, std::size_t size) noexcept {
    for (std::size_t i = 0; i < size; ++i) state_ = (state_ ^ data[i]) * 1099511628211ULL;
    state_ |= 1;
  }

  std::size_t operator()() noexcept {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    const auto pick = state_ % 4;
    return pick == 0 ? 1 : pick == 1 ? 1 + state_ % 8 : pick == 2 ? 1 + state_ % 64 : 1 + state_ % 1024;
  }

 private:
  std::uint64_t state_ = 1469598103934665603ULL;
};

// `frame_all(data, size, next_chunk)` returns something equality-comparable (frames and error).
template <typename FrameAll>
auto frame_three_ways(const std::uint8_t* data, std::size_t size, FrameAll&& frame_all) {
  InputSplits splits(data, size);
  auto whole = frame_all(data, size, [size] { return size; });
  if (!(frame_all(data, size, splits) == whole)) __builtin_trap();
  if (!(frame_all(data, size, [] { return std::size_t{1}; }) == whole)) __builtin_trap();
  return whole;
}
