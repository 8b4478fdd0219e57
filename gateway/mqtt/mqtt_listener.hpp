// MQTT 3.1.1 / 5.0 listener over TCP: devices connect with username = device id and password =
// device token, and PUBLISH telemetry on their own topic (mqtt.topic, or their device type's
// mqtt.topic) into the same pipeline as HTTP. Nothing is ever delivered to clients: SUBSCRIBE is
// refused. Behaviour, reason codes, delivery guarantees and metrics: gateway/mqtt/README.md.
//
// `mqtt.threads` I/O threads, each with its own io_context and SO_REUSEPORT acceptor (as HTTP),
// so a connection's handlers never cross threads. A connection holds no read buffer while idle:
// it waits for readability and then reads into its thread's shared buffer, which is what makes
// tens of thousands of idle devices cheap. Flow control: pause() stops reading from every
// socket (the kernel's TCP window then pushes back on the devices) and resume() takes it up
// again; a QoS 1/2 PUBLISH is acknowledged only once the pipeline says its records are durable.
// With mqtt.tls, each thread has a second acceptor on mqtt.tls.port; those connections read
// through OpenSSL into a small buffer of their own (decrypted bytes cannot wait in the kernel).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "telegate/gateway/listener.hpp"

namespace telegate::gateway {

namespace mqtt {
class SessionStore;
class TopicScheme;
}  // namespace mqtt

class MqttConnection;
class ConnectionLimiter;
class TlsContextHolder;

// Lifecycle: constructed, start()ed and stop()ed on the main thread; between start() and stop()
// each Worker's thread owns its io_context, acceptor, pipeline worker and connections. The
// session store is shared by the threads (a client may reconnect on another one).
class MqttListener final : public Listener {
 public:
  explicit MqttListener(const ListenerContext& context);
  ~MqttListener() override;

  std::string_view name() const noexcept override { return "mqtt"; }
  void start() override;
  void stop(std::chrono::milliseconds grace) override;
  void pause() override;
  void resume() override;
  bool accepting() const noexcept override { return started_ && !stopping_; }

  // The bound ports (useful with port 0); tls_port() is 0 without mqtt.tls.
  std::uint16_t port() const noexcept { return port_; }
  std::uint16_t tls_port() const noexcept { return tls_port_; }

 private:
  friend class MqttConnection;
  struct Worker;
  struct Counters;

  void accept(Worker& worker, bool tls);

  const ListenerContext context_;
  std::unique_ptr<ConnectionLimiter> limiter_;
  std::unique_ptr<TlsContextHolder> tls_;
  std::unique_ptr<mqtt::TopicScheme> default_scheme_;
  std::unique_ptr<mqtt::SessionStore> sessions_;
  std::unique_ptr<Counters> counters_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false};
  std::atomic<std::size_t> in_flight_{0};  // PUBLISHes in the pipeline, not yet completed
};

}  // namespace telegate::gateway
