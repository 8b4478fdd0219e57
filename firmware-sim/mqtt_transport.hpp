// MQTT transport (Paho MQTT C++): each simulated device holds its own MQTT connection, as
// the gateway's listener authenticates one device per connection (user name = device id,
// password = its token, client id = device id; a second connection with that client id takes
// the first one over). Publishes go to the device's topic at QoS 0 or 1.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "shared_channel.hpp"

namespace telegate::sim {

// Parsed once at start-up, read-only afterwards.
struct MqttSettings {
  std::string broker;              // tcp://host:port
  bool v5 = false;                 // MQTT 5, else 3.1.1
  int qos = 1;                     // 0 or 1
  std::size_t inflight = 1;        // unacknowledged publishes per connection
  std::string topic;               // with {tenant} and {device_id}
  std::string tenant;
  std::chrono::milliseconds timeout;  // connect, or publish → PUBACK
};

// Throws std::invalid_argument naming the option for a broker that is not tcp://host:port, a
// QoS other than 0/1, an inflight of 0 or a --mqtt-topic without {device_id}.
void check_mqtt_settings(const MqttSettings& settings);

// The fleet's MQTT connections, one per device, made on the device's first publish and again
// after a loss; each lane's channel sends whichever device's batch the lane took over that
// device's connection. Destroyed after the run, disconnecting politely. Paho's threads only
// post their results to the io_context thread.
std::unique_ptr<SharedTransport> make_mqtt_connections(boost::asio::io_context& io, const MqttSettings& settings,
                                                       std::size_t devices);

}  // namespace telegate::sim
