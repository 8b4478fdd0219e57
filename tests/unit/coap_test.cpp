#include <doctest/doctest.h>

#include "coap/coap_protocol.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"

using namespace telegate::gateway;

TEST_CASE("CoAP Content-Formats map to the media types the codecs read") {
  CHECK(coap::media_type_for(50) == "application/json");
  CHECK(coap::media_type_for(60) == "application/cbor");
  CHECK(coap::media_type_for(110) == "application/senml+json");
  CHECK(coap::media_type_for(112) == "application/senml+cbor");
  CHECK(coap::media_type_for(42) == "application/x-protobuf");
  CHECK_FALSE(coap::media_type_for(0).has_value());  // text/plain
  CHECK_FALSE(coap::media_type_for(111).has_value());
  CHECK_FALSE(coap::media_type_for(65535).has_value());
}

TEST_CASE("the t= Uri-Query item is the token, wherever it stands") {
  CHECK(coap::query_token("t=abc") == "abc");
  CHECK(coap::query_token("x=1&t=abc&y=2") == "abc");
  CHECK(coap::query_token("x=1&tt=abc") == "");
  CHECK(coap::query_token("t=") == "");
  CHECK(coap::query_token("") == "");
  CHECK(coap::query_token("&&t=a&t=b") == "a");
}

TEST_CASE("recent messages: a repeated (endpoint, id) is found; other endpoints and ids are not") {
  coap::RecentMessages recent(3, std::chrono::seconds(10));
  const auto t0 = coap::RecentMessages::Clock::now();
  const auto a1 = coap::RecentMessages::key("endpoint-a", 1);
  const auto b1 = coap::RecentMessages::key("endpoint-b", 1);
  const auto a2 = coap::RecentMessages::key("endpoint-a", 2);
  CHECK(recent.find(a1, t0) == nullptr);
  coap::RecentAnswer& answer = recent.insert(a1, t0);
  answer.state = coap::RecentAnswer::State::piggybacked;
  answer.code = 0x44;  // 2.04
  REQUIRE(recent.find(a1, t0) != nullptr);
  CHECK(recent.find(a1, t0)->code == 0x44);
  CHECK(recent.find(b1, t0) == nullptr);
  CHECK(recent.find(a2, t0) == nullptr);

  SUBCASE("entries expire after the lifetime") {
    CHECK(recent.find(a1, t0 + std::chrono::seconds(11)) == nullptr);
    CHECK(recent.size() == 0);
  }
  SUBCASE("the oldest go first when the cache is full") {
    recent.insert(b1, t0);
    recent.insert(a2, t0);
    recent.insert(coap::RecentMessages::key("endpoint-c", 9), t0);
    CHECK(recent.size() == 3);
    CHECK(recent.find(a1, t0) == nullptr);
    CHECK(recent.find(b1, t0) != nullptr);
  }
}

TEST_CASE("DTLS-PSK identities: bare device id when unambiguous, tenant/id always; key = hex token digest") {
  const std::string yaml = "device_types: [{name: tracker}]\n"
                           "tenants:\n"
                           "  - name: acme\n"
                           "    devices:\n"
                           "      - {id: truck-1, device_type: tracker, token_sha256: " + sha256_hex("t1") + "}\n" +
                           "      - {id: shared, device_type: tracker, token_sha256: " + sha256_hex("t2") + "}\n" +
                           "  - name: globex\n"
                           "    devices:\n"
                           "      - {id: shared, device_type: tracker, token_sha256: " + sha256_hex("t3") + "}\n" +
                           "      - {id: acme/truck-1, device_type: tracker, token_sha256: " + sha256_hex("t4") + "}\n";
  const DeviceRegistry registry(parse_config(yaml));
  const auto truck = registry.by_psk_identity("truck-1");
  REQUIRE(truck.has_value());
  CHECK(truck->device->tenant == "acme");
  CHECK(truck->key == sha256_hex("t1"));
  CHECK_FALSE(registry.by_psk_identity("shared").has_value());  // two tenants: ambiguous
  const auto globex = registry.by_psk_identity("globex/shared");
  REQUIRE(globex.has_value());
  CHECK(globex->device->tenant == "globex");
  CHECK(globex->key == sha256_hex("t3"));
  // "acme/truck-1" is both acme's truck-1 and globex's bare id: refused rather than guessed.
  CHECK_FALSE(registry.by_psk_identity("acme/truck-1").has_value());
  CHECK_FALSE(registry.by_psk_identity("").has_value());
  CHECK_FALSE(registry.by_psk_identity("nobody").has_value());
}

TEST_CASE("coap config: defaults, device-type paths, and errors that name the key") {
  const GatewayConfig defaults = parse_config("device_types: [{name: t}]\n");
  CHECK_FALSE(defaults.coap.enabled);
  CHECK(defaults.coap.port == 5683);
  CHECK(defaults.coap.dtls_port == 5684);
  CHECK(defaults.coap.allow_token_query);

  const GatewayConfig config = parse_config(
      "coap: {enabled: true, port: 6000, dtls: true, dtls_port: 6001, allow_token_query: false, max_body_bytes: 2048, "
      "piggyback_wait_ms: 10}\n"
      "device_types: [{name: env, codec: senml, coap: {path: /sensors/env}}]\n");
  CHECK(config.coap.enabled);
  CHECK(config.coap.port == 6000);
  CHECK_FALSE(config.coap.allow_token_query);
  CHECK(config.coap.piggyback_wait == std::chrono::milliseconds(10));
  REQUIRE(config.device_types[0].coap.has_value());
  CHECK(config.device_types[0].coap->path == "/sensors/env");

  auto error_of = [](const std::string& yaml) {
    try {
      (void)parse_config(yaml);
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  CHECK(error_of("coap: {prot: 1}\n").find("coap.prot") != std::string::npos);
  CHECK(error_of("coap: {enabled: true, dtls: true, port: 7000, dtls_port: 7000}\n").find("coap.dtls_port") !=
        std::string::npos);
  CHECK(error_of("coap: {piggyback_wait_ms: 99999}\n").find("coap.piggyback_wait_ms") != std::string::npos);
  CHECK(error_of("device_types: [{name: x, coap: {path: /v1/telemetry}}]\n").find("coap.path") != std::string::npos);
  CHECK(error_of("device_types: [{name: x, coap: {path: nope}}]\n").find("coap.path") != std::string::npos);
}
