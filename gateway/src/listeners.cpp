// The built-in listeners: one line each.
#include "coap/coap_listener.hpp"
#include "http/http_listener.hpp"
#include "mqtt/mqtt_listener.hpp"
#include "mqtt_bridge/mqtt_bridge_listener.hpp"
#include "telegate/gateway/listener.hpp"
#include "tracker/gt06/gt06_protocol.hpp"
#include "tracker/teltonika/teltonika_protocol.hpp"
#include "tracker/tracker_listener.hpp"

namespace telegate::gateway {

void ListenerRegistry::add(std::string name, ListenerFactory factory) {
  if (!factories_.emplace(std::move(name), std::move(factory)).second) {
    throw std::invalid_argument("listener registered twice");
  }
}

std::vector<std::unique_ptr<Listener>> ListenerRegistry::create_all(const ListenerContext& context) const {
  std::vector<std::unique_ptr<Listener>> listeners;
  for (const auto& [name, factory] : factories_) {
    if (auto listener = factory(context)) listeners.push_back(std::move(listener));
  }
  return listeners;
}

namespace {

// A listener that runs only when its config section says `enabled: true`.
template <class ListenerType, auto section>
ListenerFactory when_enabled() {
  return [](const ListenerContext& context) -> std::unique_ptr<Listener> {
    if (!(context.config.*section).enabled) return nullptr;
    return std::make_unique<ListenerType>(context);
  };
}

}  // namespace

void register_builtin_listeners(ListenerRegistry& registry) {
  registry.add("http", [](const ListenerContext& context) { return std::make_unique<HttpListener>(context); });
  registry.add("coap", when_enabled<CoapListener, &GatewayConfig::coap>());
  registry.add("mqtt", when_enabled<MqttListener, &GatewayConfig::mqtt>());
  registry.add("mqtt_bridge", when_enabled<MqttBridgeListener, &GatewayConfig::mqtt_bridge>());
  // Binary vehicle trackers: one line per protocol (gateway/tracker/<protocol>/ defines kSpec).
  registry.add("tracker.teltonika", tracker::listener_factory(&TrackerConfig::teltonika, tracker::teltonika::kSpec));
  registry.add("tracker.gt06", tracker::listener_factory(&TrackerConfig::gt06, tracker::gt06::kSpec));
}

}  // namespace telegate::gateway
