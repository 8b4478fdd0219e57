// Listeners: the protocol front ends. Each turns wire requests into IngestRequests and pipeline
// outcomes into protocol answers (docs/component-spec.md, "Listeners").
//
// Registration is explicit: gateway/src/listeners.cpp has one line per listener. A new
// protocol is one folder (gateway/<protocol>/) plus that line.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/catalog.hpp"
#include "telegate/gateway/config.hpp"
#include "telegate/gateway/metrics.hpp"
#include "telegate/gateway/pipeline.hpp"
#include "telegate/sinks/sink.hpp"

namespace telegate::gateway {

// What every listener gets from the gateway; all of it outlives the listener.
struct ListenerContext {
  const GatewayConfig& config;
  CatalogManager& catalog;  // device types and devices; listeners authenticate against current()
  const IngestPipeline& pipeline;
  InflightBudget& budget;
  Metrics& metrics;
  const sinks::Sink& sink;
};

// Lifecycle: created, start()ed and stop()ed on the main thread; a listener runs its own I/O
// threads between start() and stop(). pause()/resume() may be called from any thread.
class Listener {
 public:
  virtual ~Listener() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void start() = 0;
  // Stops accepting; requests in flight finish within `grace` (their acks still go out).
  virtual void stop(std::chrono::milliseconds grace) = 0;
  // Flow control: stop reading from devices / take reading up again.
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual bool accepting() const noexcept = 0;
};

using ListenerFactory = std::function<std::unique_ptr<Listener>(const ListenerContext&)>;

class ListenerRegistry {
 public:
  void add(std::string name, ListenerFactory factory);
  // One instance of every registered listener that the configuration enables.
  std::vector<std::unique_ptr<Listener>> create_all(const ListenerContext& context) const;

 private:
  std::map<std::string, ListenerFactory> factories_;
};

void register_builtin_listeners(ListenerRegistry& registry);

}  // namespace telegate::gateway
