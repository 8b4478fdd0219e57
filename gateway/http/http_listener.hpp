// HTTP/1.1 listener (Boost.Beast): POST /v1/telemetry plus /metrics, /healthz, /readyz.
//
// `http.threads` I/O threads, each with its own io_context and its own SO_REUSEPORT acceptor
// on the same port, so the kernel spreads connections and no handler ever crosses threads.
// Requests on one connection are handled strictly in order: the next request is not read until
// the previous response is written — which is also the listener's flow control: pause() stops
// reading new requests, resume() takes it up again. Status codes and bodies: gateway/README.md.
// With http.tls, each thread has a second acceptor on http.tls.port whose sessions are the same
// code over an ssl_stream (HttpSession is a template on the stream type).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "telegate/gateway/listener.hpp"

namespace telegate::gateway {

template <class Stream>
class HttpSession;
class ConnectionLimiter;
class TlsContextHolder;

// Lifecycle: constructed and start()ed on the main thread; between start() and stop() each
// Worker's thread owns its io_context, acceptor, pipeline worker and sessions.
class HttpListener final : public Listener {
 public:
  explicit HttpListener(const ListenerContext& context);
  ~HttpListener() override;

  std::string_view name() const noexcept override { return "http"; }
  void start() override;
  void stop(std::chrono::milliseconds grace) override;
  void pause() override;
  void resume() override;
  bool accepting() const noexcept override { return started_ && !stopping_; }

  // The bound ports (useful with port 0); tls_port() is 0 without http.tls.
  std::uint16_t port() const noexcept { return port_; }
  std::uint16_t tls_port() const noexcept { return tls_port_; }

 private:
  template <class Stream>
  friend class HttpSession;
  struct Worker;

  void accept(Worker& worker, boost::asio::ip::tcp::acceptor& acceptor, bool tls);

  const ListenerContext context_;
  std::unique_ptr<ConnectionLimiter> limiter_;
  std::unique_ptr<TlsContextHolder> tls_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false};
  std::atomic<std::size_t> in_flight_{0};  // telemetry requests read and not yet answered
};

}  // namespace telegate::gateway
