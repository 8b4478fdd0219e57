// For transports whose lanes share one client (MQTT: the fleet's per-device connections; CoAP:
// one libcoap context): the shared part makes each lane's channel and learns when the last lane
// has closed, to stop its own timers and let the run end.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>

#include "transport.hpp"

namespace telegate::sim {

// What a run's lanes share. Made by main before the run, destroyed after it, before the
// io_context; used on the io_context thread.
class SharedTransport {
 public:
  virtual ~SharedTransport() = default;
  virtual std::unique_ptr<Channel> channel() = 0;
};

// A lane's channel onto `Shared`, which provides send(Lane&, batch, done), channel_opened() and
// channel_closed(); `Lane` is what the lane keeps of its own (a CoAP session, or nothing).
template <typename Shared, typename Lane>
class SharedChannel final : public Channel {
 public:
  SharedChannel(Shared& shared, Lane lane) : shared_(shared), lane_(std::move(lane)) { shared_.channel_opened(); }
  void send(const Batch& batch, std::function<void(const Outcome&)> done) override {
    shared_.send(lane_, batch, std::move(done));
  }
  void close() override {
    if (!closed_) shared_.channel_closed();
    closed_ = true;
  }

 private:
  Shared& shared_;
  Lane lane_;
  bool closed_ = false;
};

// Once a second while a transport has requests open, calls `expire(oldest_allowed)`, which ends
// those sent before then as timeouts and returns whether any are still open. Owned by the
// transport, used on the io_context thread.
class TimeoutSweep {
 public:
  TimeoutSweep(boost::asio::io_context& io, Clock::duration timeout, std::function<bool(Clock::time_point)> expire)
      : timer_(io), timeout_(timeout), expire_(std::move(expire)) {}

  // After each send: starts the sweep unless it runs already.
  void arm() {
    if (armed_) return;
    armed_ = true;
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](boost::system::error_code error) {
      armed_ = false;
      if (!error && expire_(Clock::now() - timeout_)) arm();
    });
  }

  void cancel() { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
  Clock::duration timeout_;
  std::function<bool(Clock::time_point)> expire_;
  bool armed_ = false;
};

}  // namespace telegate::sim
