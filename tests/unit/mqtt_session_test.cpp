// The MQTT session layer's socket-free parts: topic schemes, topic aliases, the QoS 1/2 state
// that makes resends exactly-once, the session store (takeover, clean start, expiry), and the
// `mqtt:` configuration.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>

#include "mqtt/mqtt_session.hpp"
#include "telegate/gateway/config.hpp"

using namespace telegate::gateway::mqtt;
using Match = TopicScheme::Match;

namespace {

struct FakeConnection final : Attachment {
  void committed() override { ++told; }
  void taken_over() override { ++takeovers; }
  // What the connection would answer now (as answer_ready() does on its I/O thread).
  std::vector<std::pair<std::uint16_t, QoS>> drain(ClientState& state) {
    std::vector<std::pair<std::uint16_t, QoS>> ready;
    state.take_ready(this, ready);
    return ready;
  }
  int told = 0;
  int takeovers = 0;
};
using Ready = std::vector<std::pair<std::uint16_t, QoS>>;

std::string config_error_key(const std::string& yaml) {
  try {
    (void)telegate::gateway::parse_config(yaml);
  } catch (const telegate::gateway::ConfigError& error) {
    return error.key();
  }
  return "";
}

}  // namespace

TEST_CASE("topic schemes: the default one, a device type's own, and what they refuse") {
  const auto scheme = TopicScheme::compile("{tenant}/{device_id}/{type}");
  REQUIRE(scheme.has_value());
  CHECK(scheme->match("acme/truck-1/location", "acme", "truck-1") == Match::ok);
  CHECK(scheme->match("acme/truck-2/location", "acme", "truck-1") == Match::other_device);
  CHECK(scheme->match("umbrella/truck-1/location", "acme", "truck-1") == Match::other_tenant);
  CHECK(scheme->match("acme/truck-1", "acme", "truck-1") == Match::no_match);
  CHECK(scheme->match("acme/truck-1/location/extra", "acme", "truck-1") == Match::no_match);
  CHECK(scheme->match("$SYS/truck-1/x", "$SYS", "truck-1") == Match::no_match);
  CHECK(scheme->match("", "acme", "truck-1") == Match::no_match);

  const auto owntracks = TopicScheme::compile("owntracks/+/{device_id}");
  REQUIRE(owntracks.has_value());
  CHECK(owntracks->match("owntracks/alice/phone-1", "acme", "phone-1") == Match::ok);
  CHECK(owntracks->match("owntracks/alice/phone-2", "acme", "phone-1") == Match::other_device);
  CHECK(owntracks->match("other/alice/phone-1", "acme", "phone-1") == Match::no_match);

  const auto rest = TopicScheme::compile("d/{device_id}/#");
  REQUIRE(rest.has_value());
  CHECK(rest->match("d/x/a/b/c", "t", "x") == Match::ok);
  CHECK(rest->match("d/x", "t", "x") == Match::ok);

  CHECK_FALSE(TopicScheme::compile("{tenant}/{type}").has_value());  // no {device_id}
  CHECK_FALSE(TopicScheme::compile("a/#/{device_id}").has_value());
  CHECK_FALSE(TopicScheme::compile("a/b+/{device_id}").has_value());
  CHECK_FALSE(TopicScheme::compile("$SYS/{device_id}").has_value());
  CHECK_FALSE(TopicScheme::compile("{device_id}/{device_id}").has_value());
  CHECK_FALSE(TopicScheme::compile("").has_value());
}

TEST_CASE("topic aliases resolve per connection and refuse what was not announced") {
  TopicAliases aliases(4);
  CHECK(aliases.resolve("a/b", std::nullopt).value() == "a/b");
  CHECK(aliases.resolve("", std::nullopt).error() == ReasonCode::protocol_error);
  CHECK(aliases.resolve("", 2).error() == ReasonCode::topic_alias_invalid);  // never set
  CHECK(aliases.resolve("acme/t/location", 2).value() == "acme/t/location");
  CHECK(aliases.resolve("", 2).value() == "acme/t/location");
  CHECK(aliases.resolve("acme/t/sensor", 2).value() == "acme/t/sensor");  // re-set
  CHECK(aliases.resolve("", 2).value() == "acme/t/sensor");
  CHECK(aliases.resolve("x", 5).error() == ReasonCode::topic_alias_invalid);  // above the maximum
  CHECK(TopicAliases(0).resolve("x", 1).error() == ReasonCode::topic_alias_invalid);
}

TEST_CASE("QoS 1/2 state: a resend is answered, never ingested twice") {
  ClientState state;
  auto connection = std::make_shared<FakeConnection>();
  state.attach(connection);

  // QoS 1: in the pipeline → a DUP waits for it; committed → acked once, then the id is free.
  CHECK(state.on_publish(1, QoS::at_least_once) == ClientState::Arrival::fresh);
  CHECK(state.on_publish(1, QoS::at_least_once) == ClientState::Arrival::in_pipeline);
  CHECK_FALSE(state.take_committed(1).has_value());
  state.on_ingested(1, true);
  CHECK(connection->told == 1);
  CHECK(state.on_publish(1, QoS::at_least_once) == ClientState::Arrival::committed);
  CHECK(state.take_committed(1) == QoS::at_least_once);  // the resend is answered first…
  CHECK(state.size() == 0);
  CHECK(connection->drain(state).empty());  // …so the drain does not answer it twice
  CHECK(state.on_publish(1, QoS::at_least_once) == ClientState::Arrival::fresh);  // a new message

  // Not durable: forgotten, so the client's resend is ingested afresh.
  state.on_ingested(1, false);
  CHECK(state.on_publish(1, QoS::at_least_once) == ClientState::Arrival::fresh);
  state.forget(1);

  // QoS 2: PUBREC for every copy until PUBREL; PUBREL of an unknown id is 0x92.
  CHECK(state.on_publish(7, QoS::exactly_once) == ClientState::Arrival::fresh);
  state.on_ingested(7, true);
  CHECK(state.take_committed(7) == QoS::exactly_once);
  CHECK(state.on_publish(7, QoS::exactly_once) == ClientState::Arrival::committed);
  CHECK(state.take_committed(7) == QoS::exactly_once);
  CHECK(state.on_pubrel(7));
  CHECK_FALSE(state.on_pubrel(7));
  CHECK(state.on_publish(7, QoS::exactly_once) == ClientState::Arrival::fresh);

  // Completions after the connection went away are kept for the next one.
  state.detach(connection.get());
  const int told = connection->told;
  state.on_ingested(7, true);
  CHECK(connection->told == told);
  CHECK(connection->drain(state).empty());
  CHECK(state.on_publish(7, QoS::exactly_once) == ClientState::Arrival::committed);
}

TEST_CASE("QoS 1/2 state: a commit's completions wake the connection once and are answered together") {
  ClientState state;
  auto connection = std::make_shared<FakeConnection>();
  state.attach(connection);
  for (std::uint16_t id = 1; id <= 5; ++id) CHECK(state.on_publish(id, QoS::at_least_once) == ClientState::Arrival::fresh);
  CHECK(state.on_publish(9, QoS::exactly_once) == ClientState::Arrival::fresh);
  for (std::uint16_t id = 1; id <= 3; ++id) state.on_ingested(id, true);
  state.on_ingested(9, true);
  state.on_ingested(4, false);  // not durable: never answered, a resend is ingested afresh
  CHECK(connection->told == 1);  // one wake-up for the whole commit
  CHECK(connection->drain(state) ==
        Ready{{1, QoS::at_least_once}, {2, QoS::at_least_once}, {3, QoS::at_least_once}, {9, QoS::exactly_once}});
  CHECK(state.size() == 2);  // 5 still in the pipeline; 9 waits for PUBREL
  CHECK(state.on_publish(4, QoS::at_least_once) == ClientState::Arrival::fresh);

  // Drained: the next completion wakes it again.
  state.on_ingested(5, true);
  CHECK(connection->told == 2);
  CHECK(connection->drain(state) == Ready{{5, QoS::at_least_once}});

  // Taken over before it drained: the old connection gets nothing, the new one is woken.
  state.on_ingested(4, true);
  CHECK(connection->told == 3);
  auto next = std::make_shared<FakeConnection>();
  state.attach(next);
  CHECK(connection->drain(state).empty());
  CHECK(state.on_publish(6, QoS::at_least_once) == ClientState::Arrival::fresh);
  state.on_ingested(6, true);
  CHECK(next->told == 1);
  CHECK(connection->drain(state).empty());
  CHECK(next->drain(state) == Ready{{6, QoS::at_least_once}});
  // 4 was committed before the takeover: answered when the client resends it.
  CHECK(state.on_publish(4, QoS::at_least_once) == ClientState::Arrival::committed);
}

TEST_CASE("session store: persistent sessions continue, clean start discards, takeover tells the old connection") {
  SessionStore store;
  using namespace std::chrono_literals;
  const auto t0 = SessionStore::Clock::now();
  auto first = std::make_shared<FakeConnection>();
  auto attached = store.attach("acme/truck-1/c1", false, first, t0);
  CHECK_FALSE(attached.session_present);
  CHECK(attached.state->on_publish(3, QoS::exactly_once) == ClientState::Arrival::fresh);

  // Same client id while connected: the old connection is taken over; state continues.
  auto second = std::make_shared<FakeConnection>();
  auto again = store.attach("acme/truck-1/c1", false, second, t0);
  CHECK(first->takeovers == 1);
  CHECK(again.session_present);
  CHECK(again.state == attached.state);
  store.detach("acme/truck-1/c1", first.get(), 60s, t0);  // the old one closing changes nothing
  CHECK(again.state->owner() == second);

  // Disconnected with an expiry: kept until it passes, then swept.
  store.detach("acme/truck-1/c1", second.get(), 60s, t0);
  CHECK(store.size() == 1);
  auto third = std::make_shared<FakeConnection>();
  auto resumed = store.attach("acme/truck-1/c1", false, third, t0 + 30s);
  CHECK(resumed.session_present);
  CHECK(resumed.state->on_publish(3, QoS::exactly_once) == ClientState::Arrival::in_pipeline);
  store.detach("acme/truck-1/c1", third.get(), 60s, t0 + 30s);
  auto late = std::make_shared<FakeConnection>();
  CHECK_FALSE(store.attach("acme/truck-1/other", true, late, t0 + 200s).session_present);
  CHECK(store.size() == 1);  // c1 expired and was swept; "other" is attached

  // Clean start drops what was kept; expiry 0 forgets at once.
  store.detach("acme/truck-1/other", late.get(), 0s, t0 + 200s);
  CHECK(store.size() == 0);
  auto fourth = std::make_shared<FakeConnection>();
  store.attach("k", false, fourth, t0);
  store.detach("k", fourth.get(), 60s, t0);
  CHECK_FALSE(store.attach("k", true, fourth, t0).session_present);
}

TEST_CASE("log limiter: one line per interval, then says how many were skipped") {
  LogLimiter limiter(std::chrono::milliseconds(1000));
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t suppressed = 99;
  CHECK(limiter.allow(t0, suppressed));
  CHECK(suppressed == 0);
  CHECK_FALSE(limiter.allow(t0, suppressed));
  CHECK_FALSE(limiter.allow(t0 + std::chrono::milliseconds(500), suppressed));
  CHECK(limiter.allow(t0 + std::chrono::milliseconds(1000), suppressed));
  CHECK(suppressed == 2);
}

TEST_CASE("mqtt: configuration") {
  const std::string devices = R"(
device_types:
  - {name: phone, mqtt: {topic: "owntracks/+/{device_id}", content_type: application/json}}
tenants: []
)";
  const auto config = telegate::gateway::parse_config("mqtt: {enabled: true, port: 1884, receive_maximum: 10, will: refuse}\n" + devices);
  CHECK(config.mqtt.enabled);
  CHECK(config.mqtt.port == 1884);
  CHECK(config.mqtt.receive_maximum == 10);
  CHECK(config.mqtt.will == telegate::gateway::MqttWillMode::refuse);
  CHECK(config.mqtt.topic == "{tenant}/{device_id}/{type}");
  REQUIRE(config.device_types[0].mqtt.has_value());
  CHECK(config.device_types[0].mqtt->topic == "owntracks/+/{device_id}");
  CHECK_FALSE(telegate::gateway::parse_config("").mqtt.enabled);

  CHECK(config_error_key("mqtt: {topic: \"{tenant}/x\"}") == "mqtt.topic");
  CHECK(config_error_key("mqtt: {receive_maximum: 0}") == "mqtt.receive_maximum");
  CHECK(config_error_key("mqtt: {will: sometimes}") == "mqtt.will");
  CHECK(config_error_key("mqtt: {max_packet_size: 10}") == "mqtt.max_packet_size");
  CHECK(config_error_key("mqtt: {colour: blue}") == "mqtt.colour");
  CHECK(config_error_key("device_types:\n  - {name: t, mqtt: {topic: \"a/+\"}}\n") == "device_types[0].mqtt.topic");
}
