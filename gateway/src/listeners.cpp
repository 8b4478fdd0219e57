// The built-in listeners: one line each.
#include "coap/coap_listener.hpp"
#include "http/http_listener.hpp"
#include "mqtt_bridge/mqtt_bridge_listener.hpp"
#include "telegate/gateway/listener.hpp"

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

void register_builtin_listeners(ListenerRegistry& registry) {
  registry.add("http", [](const ListenerContext& context) { return std::make_unique<HttpListener>(context); });
  registry.add("coap", [](const ListenerContext& context) -> std::unique_ptr<Listener> {
    if (!context.config.coap.enabled) return nullptr;
    return std::make_unique<CoapListener>(context);
  });
  registry.add("mqtt_bridge", [](const ListenerContext& context) -> std::unique_ptr<Listener> {
    if (!context.config.mqtt_bridge.enabled) return nullptr;
    return std::make_unique<MqttBridgeListener>(context);
  });
}

}  // namespace telegate::gateway
