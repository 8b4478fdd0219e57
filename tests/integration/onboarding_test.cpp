// Onboarding end to end, against the real broker and the real binary, with traffic flowing:
// a new device type (Traccar Client's OsmAnd protocol) is created through the admin API,
// its device provisioned, its pings sent the way the app sends them (curl), updated, rolled
// back and seen by a second replica through the compacted catalog topic — with no restart, and
// with the background traffic of an existing device neither lost nor duplicated.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::curl;
using telegate::testing::GatewayProcess;
using telegate::testing::HttpResult;
using telegate::testing::TempDir;

namespace {

constexpr double kKnot = 1852.0 / 3600.0;
constexpr double kKmh = 1000.0 / 3600.0;

std::string config_for(const std::string& run, const std::string& instance) {
  return "instance_id: " + instance + "\n" +
         "admin: {token_sha256: " + gateway::sha256_hex("admin-" + run) + "}\n" +
         "catalog: {kafka_topic: it-catalog-" + run + "}\n" +
         testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", 50) +
         "device_types: [{name: tracker, codec: json}]\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices: [{id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}]\n";
}

HttpResult admin(const GatewayProcess& gateway, const std::string& run, const std::string& method, const std::string& path,
                 const std::string& body = "") {
  std::vector<std::string> args = {"-X", method, "-H", "Authorization: Bearer admin-" + run};
  if (!body.empty()) args.insert(args.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  args.push_back(gateway.url(path));
  return curl(args);
}

// The definition an operator would upload: Traccar Client pings on /osmand/<token>.
std::string phone_type(const std::string& run, const std::string& speed_unit) {
  return R"({"description":"Traccar Client phones","tenants":["acme"],"codec":"osmand",)"
         R"("codec_options":{"speed_unit":")" + speed_unit + R"("},"envelope_format":"json",)"
         R"("topic_template":"it.)" + run + R"(.onboard.{device_type}","http":{"path":"/osmand","auth":"path_token"},)"
         R"("samples":[{"name":"traccar-get","content_type":"application/x-www-form-urlencoded",)"
         R"("body":"id=sample&timestamp=1714564800&lat=52.52&lon=13.405&speed=10",)"
         R"("expect":[{"lat":52.52,"lon":13.405,"time":1714564800000}]}]})";
}

// What Traccar Client sends: its fix as query parameters, identity in the URL path.
HttpResult traccar_ping(const GatewayProcess& gateway, const std::string& token, const std::string& device,
                        std::int64_t timestamp, bool as_post = false) {
  const std::string query = "?id=" + device + "&timestamp=" + std::to_string(timestamp) +
                            "&lat=52.52&lon=13.405&speed=10&bearing=90&altitude=34&accuracy=5&batt=87";
  std::vector<std::string> args;
  if (as_post) args = {"-X", "POST"};
  args.push_back(gateway.url("/osmand/" + token + query));
  return curl(args);
}

}  // namespace

TEST_CASE("a device type is onboarded, updated and rolled back through the API while traffic flows") {
  const std::string run = testing::unique_run_id();
  TempDir dir_a, dir_b;
  GatewayProcess gateway(dir_a.path(), config_for(run, "onboard-a-" + run));
  gateway.start();
  gateway.wait_ready();

  // Background traffic from a device that exists before and throughout the onboarding.
  std::atomic<bool> stop{false};
  std::set<std::string> acknowledged;
  std::size_t refused = 0;
  std::thread traffic([&] {
    for (int i = 0; !stop; ++i) {
      const std::string msg_id = "bg-" + run + "-" + std::to_string(i);
      const std::string body = R"({"device_id":"truck-1","type":"location","ts":)" + std::to_string((testing::unix_ms() / 1000) * 1000) +
                               R"(,"msg_id":")" + msg_id + R"(","lat":48.1,"lon":11.5})";
      const HttpResult result = testing::curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", body);
      if (result.status == 200) {
        acknowledged.insert(msg_id);
      } else {
        ++refused;
      }
    }
  });

  // 1. Create the device type; its sample runs at upload.
  HttpResult created = admin(gateway, run, "PUT", "/admin/v1/device-types/acme-phone", phone_type(run, "knots"));
  REQUIRE_MESSAGE(created.status == 200, created.body);
  CHECK(created.body.find(R"("version":1)") != std::string::npos);
  HttpResult device = admin(gateway, run, "PUT", "/admin/v1/devices/acme/phone-1",
                            R"({"device_type":"acme-phone","token":"phone-1-token"})");
  REQUIRE_MESSAGE(device.status == 200, device.body);

  const std::int64_t base = (testing::unix_ms() / 1000) - 60;
  std::map<std::int64_t, double> expected_speed;  // event time (s) → m/s
  for (int i = 0; i < 3; ++i) {
    const HttpResult ping = traccar_ping(gateway, "phone-1-token", "phone-1", base + i, i == 2);
    CHECK_MESSAGE(ping.status == 200, ping.body);
    expected_speed[base + i] = 10 * kKnot;
  }
  CHECK(traccar_ping(gateway, "wrong-token", "phone-1", base).status == 401);
  CHECK(traccar_ping(gateway, "phone-1-token", "phone-2", base).status == 403);  // spoofed id in the query

  // 2. Update: this customer's phones report km/h.
  HttpResult updated = admin(gateway, run, "PUT", "/admin/v1/device-types/acme-phone", phone_type(run, "kmh"));
  REQUIRE_MESSAGE(updated.status == 200, updated.body);
  CHECK(updated.body.find(R"("version":2)") != std::string::npos);
  for (int i = 10; i < 12; ++i) {
    CHECK(traccar_ping(gateway, "phone-1-token", "phone-1", base + i).status == 200);
    expected_speed[base + i] = 10 * kKmh;
  }

  // 3. A definition whose sample fails is refused, and the active version stays.
  std::string broken = phone_type(run, "kmh");
  broken.replace(broken.find("\"lat\":52.52"), 11, "\"lat\":10.00");
  const HttpResult refused_upload = admin(gateway, run, "PUT", "/admin/v1/device-types/acme-phone", broken);
  CHECK(refused_upload.status == 422);
  CHECK(refused_upload.body.find("sample_failed") != std::string::npos);

  // 4. Roll back to the knots version (becomes version 3).
  HttpResult rolled = admin(gateway, run, "POST", "/admin/v1/device-types/acme-phone/rollback");
  REQUIRE_MESSAGE(rolled.status == 200, rolled.body);
  CHECK(rolled.body.find(R"("rolled_back_to":1)") != std::string::npos);
  CHECK(traccar_ping(gateway, "phone-1-token", "phone-1", base + 20).status == 200);
  expected_speed[base + 20] = 10 * kKnot;

  // 5. A second replica reads the catalog from Kafka and serves the new type at once.
  GatewayProcess replica(dir_b.path(), config_for(run, "onboard-b-" + run));
  replica.start();
  replica.wait_ready();
  const HttpResult from_replica = traccar_ping(replica, "phone-1-token", "phone-1", base + 30);
  CHECK_MESSAGE(from_replica.status == 200, from_replica.body);
  expected_speed[base + 30] = 10 * kKnot;
  const HttpResult listed = admin(replica, run, "GET", "/admin/v1/device-types/acme-phone");
  CHECK(listed.body.find(R"("version":3)") != std::string::npos);

  // 6. The dry run shows the record and envelope without writing anything.
  std::vector<std::string> dry_args = {"-X", "POST", "-H", "Authorization: Bearer admin-" + run, "-H",
                                       "Content-Type: application/x-www-form-urlencoded", "--data-binary",
                                       "id=x&timestamp=" + std::to_string((testing::unix_ms() / 1000)) + "&lat=91&lon=0",
                                       gateway.url("/admin/v1/device-types/acme-phone/dry-run")};
  const HttpResult dry = curl(dry_args);
  CHECK(dry.status == 200);
  CHECK(dry.body.find("must be within [-90, 90]") != std::string::npos);

  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  traffic.join();
  replica.signal(SIGTERM);
  CHECK(replica.wait() == 0);
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  // The phone's records: exactly the pings answered 200, each with the units of its version.
  const auto phone = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".onboard.acme-phone",
                                             expected_speed.size() + 1);
  CHECK(phone.size() == expected_speed.size());
  for (const auto& message : phone) {
    const auto decoded = envelope::decode_envelope(message.value, envelope::Format::json);
    REQUIRE_MESSAGE(decoded.has_value(), message.value);
    const std::int64_t event_s = decoded->record.event_time_ms / 1000;
    REQUIRE(expected_speed.contains(event_s));
    REQUIRE(decoded->record.location.speed.has_value());
    CHECK(std::fabs(*decoded->record.location.speed - expected_speed[event_s]) < 1e-6);
    CHECK(decoded->record.device_id == "phone-1");
    CHECK(decoded->device_type == "acme-phone");
    CHECK(message.key == "phone-1");
  }

  // The existing device's traffic: every acknowledged record exactly once, nothing else.
  REQUIRE(acknowledged.size() > 10);
  const auto background =
      testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location", acknowledged.size() + 1);
  std::multiset<std::string> seen;
  for (const auto& message : background) {
    const auto decoded = envelope::decode_envelope(message.value, envelope::Format::protobuf);
    REQUIRE(decoded.has_value());
    seen.insert(decoded->record.msg_id);
  }
  CHECK(seen.size() == acknowledged.size());
  for (const std::string& id : acknowledged) CHECK_MESSAGE(seen.count(id) == 1, id);
  CHECK(refused == 0);
}
