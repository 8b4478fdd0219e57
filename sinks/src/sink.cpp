#include "telegate/sinks/sink.hpp"

namespace telegate::sinks {

std::string_view to_string(SinkErrc code) noexcept {
  switch (code) {
    case SinkErrc::unavailable: return "unavailable";
    case SinkErrc::timed_out: return "timed_out";
    case SinkErrc::rejected: return "rejected";
    case SinkErrc::fenced: return "fenced";
    case SinkErrc::io_error: return "io_error";
    case SinkErrc::stopping: return "stopping";
  }
  return "unknown";
}

}  // namespace telegate::sinks
