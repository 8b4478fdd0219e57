// The binary vehicle-tracker listener (gateway/tracker/README.md): one per enabled
// tracker.<protocol> section, a TCP acceptor and optionally a UDP socket, speaking the protocol
// given by its ProtocolSpec. Records go through the ordinary IngestPipeline with the protocol's
// content type; the tracker's ack is written only from the sink's completion.
//
// One I/O thread per listener owns the io_context, the acceptor, the UDP socket, the pipeline
// worker and every connection (trackers send a frame every few seconds at most: one thread
// carries thousands of them). Flow control: a connection is not read while its frame is in the
// pipeline (the tracker waits for the ack anyway) nor while the listener is paused.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "telegate/gateway/listener.hpp"
#include "tracker/tracker_protocol.hpp"

namespace telegate::gateway {

class ConnectionLimiter;

namespace tracker {

class TrackerConnection;

// Lifecycle: constructed, start()ed and stop()ed on the main thread; between start() and stop()
// its I/O thread owns everything but the atomics.
class TrackerListener final : public Listener {
 public:
  TrackerListener(const ListenerContext& context, const TrackerListenerConfig& config, ProtocolSpec spec);
  ~TrackerListener() override;

  std::string_view name() const noexcept override { return name_; }
  void start() override;
  void stop(std::chrono::milliseconds grace) override;
  void pause() override;
  void resume() override;
  bool accepting() const noexcept override { return started_ && !stopping_; }

  // The bound ports (useful with port 0); udp_port() is 0 without UDP.
  std::uint16_t tcp_port() const noexcept { return tcp_port_; }
  std::uint16_t udp_port() const noexcept { return udp_port_; }

 private:
  friend class TrackerConnection;
  struct Worker;
  struct Counters;

  void accept();
  void receive_datagram();
  void on_datagram(std::size_t size);
  // The device an IMEI names: in tracker.<protocol>.tenant if set, else the only tenant that
  // has a device of that id. nullptr: unknown (or ambiguous without a tenant).
  const DeviceIdentity* find_device(const Catalog& catalog, std::string_view imei) const;

  const ListenerContext context_;
  const TrackerListenerConfig& config_;
  const ProtocolSpec spec_;
  const std::string name_;
  std::unique_ptr<ConnectionLimiter> limiter_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<Worker> worker_;
  std::uint16_t tcp_port_ = 0;
  std::uint16_t udp_port_ = 0;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false};
  std::atomic<std::size_t> in_flight_{0};  // frames in the pipeline, not yet completed
};

// The registry's factory for tracker.<spec.name>: a TrackerListener when the section is enabled.
ListenerFactory listener_factory(TrackerListenerConfig TrackerConfig::*section, ProtocolSpec spec);

}  // namespace tracker
}  // namespace telegate::gateway
