#include "mqtt_transport.hpp"

#include <mqtt/async_client.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <boost/asio/steady_timer.hpp>
#include <stdexcept>
#include <vector>

#include "batch_acks.hpp"

namespace telegate::sim {

namespace asio = boost::asio;

void check_mqtt_settings(const MqttSettings& settings) {
  if (!settings.broker.starts_with("tcp://") || settings.broker.find(':', 6) == std::string::npos) {
    throw std::invalid_argument("--broker must be tcp://host:port");
  }
  if (settings.qos != 0 && settings.qos != 1) throw std::invalid_argument("--qos: 0 | 1");
  if (settings.inflight == 0 || settings.inflight > 65535) throw std::invalid_argument("--inflight: 1 … 65535");
  if (settings.topic.find("{device_id}") == std::string::npos) {
    throw std::invalid_argument("--mqtt-topic must contain {device_id}: the listener checks it is the authenticated device");
  }
}

namespace {

// A PUBACK's reason as the HTTP code the retry policy and the summary speak: 0x97 Quota
// exceeded (or too many records) is retried like a 429; 0x99 (nothing decodable or valid)
// counts its records as rejected like a 422; other refusals are final.
unsigned status_of_reason(int reason) {
  if (reason < 0x80) return 200;
  switch (reason) {
    case 0x97: return 429;
    case 0x87: return 403;
    case 0x99: return 422;
    default: return 500;
  }
}

std::string replace_all(std::string text, std::string_view key, std::string_view value) {
  for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size())) {
    text.replace(at, key.size(), value);
  }
  return text;
}

}  // namespace

// See make_mqtt_connections.
class MqttFleetConnections final : public SharedTransport {
 public:
  MqttFleetConnections(asio::io_context& io, const MqttSettings& settings, std::size_t devices)
      : io_(io),
        settings_(settings),
        sweep_(io, settings.timeout, [this](Clock::time_point oldest_allowed) { return expire(oldest_allowed); }),
        links_(devices) {
    for (std::size_t i = 0; i < devices; ++i) links_[i] = std::make_unique<Link>(*this);
  }

  ~MqttFleetConnections() override {
    // Politely: DISCONNECT on every connection still up, all at once, then wait for them.
    std::vector<mqtt::token_ptr> closing;
    for (auto& link : links_) {
      if (!link->client || !link->client->is_connected()) continue;
      try {
        closing.push_back(link->client->disconnect());
      } catch (const mqtt::exception&) {  // lost meanwhile: nothing to close
      }
    }
    for (const auto& token : closing) {
      try {
        token->wait_for(settings_.timeout);
      } catch (const mqtt::exception&) {
      }
    }
  }

  std::unique_ptr<Channel> channel() override;

  struct NoLaneState {};
  void send(NoLaneState, const Batch& batch, std::function<void(const Outcome&)> done) {
    Link& link = *links_[batch.device];
    if (!link.client) create(link, batch);
    link.waiting.push_back({&batch, std::move(done), 0, {}});
    pump(link);
  }

  void channel_opened() {
    // Paho answers on its own threads: the io_context must wait for them while lanes run.
    if (open_channels_++ == 0) work_.emplace(io_.get_executor());
  }

  void channel_closed() {
    if (--open_channels_ > 0) return;
    sweep_.cancel();
    work_.reset();
  }

 private:
  struct Pending {
    const Batch* batch = nullptr;
    std::function<void(const Outcome&)> done;
    std::uint64_t seq = 0;  // the publish's Paho user context; 0 while waiting
    Clock::time_point sent_at;
  };
  enum class State { down, connecting, up };

  // One device's connection and its publishes. Paho calls the listener on its own threads;
  // everything else runs on the io_context thread.
  struct Link final : mqtt::iaction_listener {
    explicit Link(MqttFleetConnections& owner) : fleet(owner) {}
    void on_success(const mqtt::token& token) override { fleet.reported(*this, token, true); }
    void on_failure(const mqtt::token& token) override { fleet.reported(*this, token, false); }

    MqttFleetConnections& fleet;
    std::unique_ptr<mqtt::async_client> client;  // made at the device's first publish
    std::string topic;
    State state = State::down;
    std::uint64_t next_seq = 1;
    std::vector<Pending> waiting;   // to publish once connected and under --inflight
    std::vector<Pending> inflight;  // published, not yet acknowledged
  };

  void create(Link& link, const Batch& batch) {
    link.client = std::make_unique<mqtt::async_client>(
        settings_.broker, batch.device_id, mqtt::create_options(settings_.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1),
        nullptr);
    link.topic = replace_all(replace_all(settings_.topic, "{tenant}", settings_.tenant), "{device_id}", batch.device_id);
    Link* raw = &link;
    link.client->set_connection_lost_handler([this, raw](const std::string&) {
      asio::post(io_, [this, raw] { connection_lost(*raw); });
    });
    // A v5 server's DISCONNECT (0x89 Server busy, 0x8E taken over) ends the connection without
    // Paho calling the handler above.
    link.client->set_disconnected_handler([this, raw](const mqtt::properties&, mqtt::ReasonCode) {
      asio::post(io_, [this, raw] { connection_lost(*raw); });
    });
  }

  void connect(Link& link, const Batch& batch) {
    mqtt::connect_options options;
    options.set_mqtt_version(settings_.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    // A fresh session each time: the sim resends what was unacknowledged itself, with the same
    // msg_ids, and the gateway's msg_id de-duplication keeps Kafka free of the copies.
    if (settings_.v5) {
      options.set_clean_session(false);  // Paho refuses the 3.1.1 flag on a v5 connect
      options.set_clean_start(true);
    } else {
      options.set_clean_session(true);
    }
    options.set_user_name(batch.device_id);
    options.set_password(batch.token);
    options.set_keep_alive_interval(60);
    options.set_connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(settings_.timeout) +
                                std::chrono::seconds(1));
    options.set_max_inflight(static_cast<int>(settings_.inflight));
    link.state = State::connecting;
    try {
      link.client->connect(options, nullptr, link);
    } catch (const mqtt::exception&) {
      link.state = State::down;
      fail_all(link, OutcomeKind::connect_error);
    }
  }

  // Publishes what waits, up to --inflight unacknowledged; connects first when down.
  void pump(Link& link) {
    if (link.state == State::down && !link.waiting.empty()) return connect(link, *link.waiting.front().batch);
    while (link.state == State::up && !link.waiting.empty() && link.inflight.size() < settings_.inflight) {
      Pending pending = std::move(link.waiting.front());
      link.waiting.erase(link.waiting.begin());
      const Batch& batch = *pending.batch;
      auto message = mqtt::make_message(link.topic, batch.body.data(), batch.body.size(), settings_.qos, false);
      if (settings_.v5) {
        message->set_properties({mqtt::property(mqtt::property::CONTENT_TYPE, std::string(batch.format->content_type))});
      }
      pending.seq = link.next_seq++;
      pending.sent_at = Clock::now();
      const std::uint64_t seq = pending.seq;
      link.inflight.push_back(std::move(pending));
      try {
        link.client->publish(message, reinterpret_cast<void*>(seq), link);
      } catch (const mqtt::exception&) {
        return drop(link, OutcomeKind::write_error);
      }
      sweep_.arm();
    }
  }

  // On a Paho thread: take what the token says, handle it on the io_context thread.
  void reported(Link& link, const mqtt::token& token, bool success) {
    const auto seq = reinterpret_cast<std::uintptr_t>(token.get_user_context());
    const int reason = static_cast<int>(token.get_reason_code());
    Link* raw = &link;
    asio::post(io_, [this, raw, seq, success, reason] {
      if (seq == 0) return connected(*raw, success);
      published(*raw, seq, success, reason);
    });
  }

  void connected(Link& link, bool success) {
    if (link.state != State::connecting) return;
    if (!success) {
      link.state = State::down;
      return fail_all(link, OutcomeKind::connect_error);
    }
    link.state = State::up;
    pump(link);
  }

  void published(Link& link, std::uint64_t seq, bool success, int reason) {
    const auto found = std::find_if(link.inflight.begin(), link.inflight.end(),
                                    [seq](const Pending& pending) { return pending.seq == seq; });
    if (found == link.inflight.end()) return;  // already failed with its connection
    Pending pending = std::move(*found);
    link.inflight.erase(found);
    Outcome outcome;
    outcome.latency = Clock::now() - pending.sent_at;
    // A v5 negative PUBACK is a Paho failure carrying the reason; a failure without one
    // (MQTTASYNC_DISCONNECTED, …) means the publish never got its answer.
    if (!success && reason < 0x80) {
      outcome.kind = OutcomeKind::write_error;
    } else {
      outcome.status = status_of_reason(success ? 0 : reason);
      if (outcome.status == 200) {
        outcome.accepted = pending.batch->records;
        // QoS 0 is never acknowledged: written to the socket is all the device knows.
        if (settings_.qos == 1) acks_.acknowledge(*pending.batch, outcome);
      } else if (outcome.status == 422) {
        outcome.rejected = pending.batch->records;
      }
    }
    pending.done(outcome);
    pump(link);
  }

  // The connection is gone (or given up): every publish on it and waiting for it fails, so
  // the lanes resend after their backoff, with the same msg_ids, over a new connection.
  void connection_lost(Link& link) {
    // Both of Paho's handlers may report one loss; a late one finds the link down, or already
    // connecting or connected anew.
    if (link.state != State::up || link.client->is_connected()) return;
    drop(link, OutcomeKind::read_error);
  }

  void drop(Link& link, OutcomeKind kind) {
    if (link.client->is_connected()) {
      try {
        link.client->disconnect(0);
      } catch (const mqtt::exception&) {  // lost meanwhile
      }
    }
    link.state = State::down;
    fail_all(link, kind);
  }

  void fail_all(Link& link, OutcomeKind kind) {
    std::vector<Pending> failed = std::move(link.inflight);
    failed.insert(failed.end(), std::make_move_iterator(link.waiting.begin()), std::make_move_iterator(link.waiting.end()));
    link.inflight.clear();
    link.waiting.clear();
    for (Pending& pending : failed) {
      Outcome outcome;
      outcome.kind = kind;
      if (pending.seq) outcome.latency = Clock::now() - pending.sent_at;
      pending.done(outcome);
    }
  }

  // A connection whose oldest publish has waited --timeout-ms for its PUBACK (a gateway
  // holding it under overload, a dead peer) is dropped.
  bool expire(Clock::time_point oldest_allowed) {
    bool busy = false;
    for (auto& link : links_) {
      if (link->inflight.empty()) continue;
      if (link->inflight.front().sent_at < oldest_allowed) {
        drop(*link, OutcomeKind::timeout);
      } else {
        busy = true;
      }
    }
    return busy;
  }

  asio::io_context& io_;
  const MqttSettings& settings_;
  TimeoutSweep sweep_;
  std::size_t open_channels_ = 0;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::unique_ptr<Link>> links_;  // by device index; stable addresses for Paho
  BatchAcks acks_;
};

std::unique_ptr<Channel> MqttFleetConnections::channel() {
  return std::make_unique<SharedChannel<MqttFleetConnections, NoLaneState>>(*this, NoLaneState{});
}

std::unique_ptr<SharedTransport> make_mqtt_connections(asio::io_context& io, const MqttSettings& settings,
                                                       std::size_t devices) {
  return std::make_unique<MqttFleetConnections>(io, settings, devices);
}

}  // namespace telegate::sim
