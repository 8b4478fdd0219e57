// The wall clock as Unix milliseconds: the time base of a record's event time, the envelope's
// ingest time, Kafka timestamps and the spool's and catalog's stamps. One definition, so every
// component reads the same clock the same way.
#pragma once

#include <chrono>
#include <cstdint>

namespace telegate::codecs {

inline std::int64_t unix_ms_now() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace telegate::codecs
