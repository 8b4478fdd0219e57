// Fuzz target for telegate-sim's GPX track reader (`--routes DIR` takes any downloaded .gpx):
// it either throws std::invalid_argument or returns points a Route is built from, never
// crashes or reads out of bounds. motion.cpp is compiled in directly (no other dependency).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "motion.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const telegate::sim::Route route("fuzz", telegate::sim::parse_gpx_track(
                                                 std::string_view(reinterpret_cast<const char*>(data), size)));
    (void)route.at(route.length_m() / 2);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
