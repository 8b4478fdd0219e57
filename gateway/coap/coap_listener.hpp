// CoAP (RFC 7252) listener over UDP and DTLS-PSK, on libcoap 4.3.1: POST/PUT of telemetry to
// /v1/telemetry and to device types' own `coap.path`, feeding the same pipeline as HTTP.
//
// One I/O thread owns the libcoap context (libcoap 4.3.1 is not thread-safe) and everything in
// it. Confirmable requests are answered only from the sink's completion: piggybacked in the ACK
// when the completion arrives within coap.piggyback_wait_ms (and no other datagram is waiting),
// else an empty ACK at once and a separate confirmable response later. Behaviour, codes and
// metrics: gateway/coap/README.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "telegate/gateway/listener.hpp"

namespace telegate::gateway {

// Lifecycle: constructed, start()ed and stop()ed on the main thread; between start() and stop()
// the I/O thread owns the libcoap context, the pipeline worker and the recent-message cache.
class CoapListener final : public Listener {
 public:
  explicit CoapListener(const ListenerContext& context);
  ~CoapListener() override;

  std::string_view name() const noexcept override { return "coap"; }
  void start() override;
  void stop(std::chrono::milliseconds grace) override;
  // Paused, the listener keeps reading and answers new requests 5.03 with Max-Age
  // (admission.retry_after_s): on UDP, not reading would only make devices retransmit blindly.
  void pause() override;
  void resume() override;
  bool accepting() const noexcept override;

  struct State;  // libcoap types stay out of this header

 private:
  std::unique_ptr<State> state_;
};

}  // namespace telegate::gateway
