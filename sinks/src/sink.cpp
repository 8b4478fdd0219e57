#include "telegate/sinks/sink.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

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

namespace {

prometheus::Family<prometheus::Counter>& records_family(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("telegate_sink_records_total")
      .Help("Records handed to a sink, by outcome")
      .Register(registry);
}

}  // namespace

SinkCounters::SinkCounters(prometheus::Registry& registry, std::string_view sink, std::string_view durable_result)
    : durable(records_family(registry).Add({{"sink", std::string(sink)}, {"result", std::string(durable_result)}})),
      failed(records_family(registry).Add({{"sink", std::string(sink)}, {"result", "failed"}})),
      batches(prometheus::BuildCounter()
                  .Name("telegate_sink_batches_total")
                  .Help("Batches handed to a sink")
                  .Register(registry)
                  .Add({{"sink", std::string(sink)}})) {}

}  // namespace telegate::sinks
