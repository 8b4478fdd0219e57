// MQTT bridge: for fleets that already run an MQTT broker, telegate subscribes to it (Paho MQTT
// C++ 1.2 over Paho C 1.3) and feeds every message into the same pipeline HTTP uses. The topic
// names the device (mqtt_bridge.mappings); the device must be provisioned in the catalog.
//
// Delivery: a QoS 1/2 message is acknowledged to the broker only after the pipeline says its
// records are committed to Kafka (or that the payload can never become valid). Paho sends the
// PUBACK (MQTT 5 also the PUBREC) when the message-arrived callback returns, so the callback
// blocks until the outcome; Paho runs the callbacks of every client in a process on one thread,
// so a replica has one message in flight. Guarantees, failure table and metrics:
// gateway/mqtt_bridge/README.md.
#pragma once

#include <memory>

#include "telegate/gateway/listener.hpp"

namespace telegate::gateway {

// Lifecycle: constructed, start()ed and stop()ed on the main thread. Between start() and stop()
// Paho's threads own the connections; its delivery thread runs the pipeline workers.
// pause()/resume() may be called from any thread (the admission watermark calls them).
class MqttBridgeListener final : public Listener {
 public:
  explicit MqttBridgeListener(const ListenerContext& context);
  ~MqttBridgeListener() override;

  std::string_view name() const noexcept override { return "mqtt_bridge"; }
  void start() override;
  // Waits up to `grace` for messages with the sink (their acks go out), then disconnects every
  // client without ending its session. A message that cannot be committed (paused, Kafka down)
  // stays in its callback unacknowledged and the state is leaked so the process can exit around
  // it: the broker redelivers it to the next replica or to this one after a restart.
  void stop(std::chrono::milliseconds grace) override;
  // Paused, the delivery callback holds the next message unacknowledged and Paho stops reading
  // from the broker, which keeps the rest in the persistent session. Nothing is refused or lost.
  void pause() override;
  void resume() override;
  bool accepting() const noexcept override;

  struct State;  // Paho types stay out of this header

 private:
  std::unique_ptr<State> state_;
};

}  // namespace telegate::gateway
