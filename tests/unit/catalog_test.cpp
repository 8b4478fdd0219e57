// The onboarding catalog without sockets: versions, samples, rollback, devices, the file
// store across restarts, snapshots that do not change under a reader, and the admin API's
// routing and authentication.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "../../gateway/src/admin_api.hpp"
#include "telegate/gateway/catalog.hpp"

using namespace telegate;
using namespace telegate::gateway;

namespace {

std::filesystem::path scratch_file() {
  std::random_device random;
  return std::filesystem::temp_directory_path() / ("telegate-catalog-" + std::to_string(random()) + ".jsonl");
}

const std::string kConfig = "device_types: [{name: tracker}]\n"
                            "tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                            sha256_hex("truck-token") + "}]}]\n"
                            "admin: {token_sha256: " + sha256_hex("admin") + "}\n";

// A definition whose one sample expects `speed` m/s for 10 of `unit`.
std::string phone(const std::string& unit, double speed, const std::string& path = "/osmand") {
  return R"({"codec":"osmand","codec_options":{"speed_unit":")" + unit + R"("},"tenants":["acme"],)"
         R"("http":{"path":")" + path + R"(","auth":"path_token"},"samples":[{"content_type":"application/x-www-form-urlencoded",)"
         R"("body":"id=p&timestamp=1714564800&lat=1&lon=2&speed=10","expect":[{"speed":)" + std::to_string(speed) + "}]}]}";
}

struct Fixture {
  std::filesystem::path file = scratch_file();
  GatewayConfig config = parse_config(kConfig);
  codecs::CodecRegistry codecs;
  std::unique_ptr<CatalogManager> catalog;

  Fixture() {
    codecs::register_builtin_codecs(codecs);
    restart();
  }
  ~Fixture() { std::filesystem::remove(file); }
  void restart() {
    catalog.reset();
    catalog = std::make_unique<CatalogManager>(config, codecs, make_file_catalog_store(file));
  }
  std::uint64_t active_version(std::string_view name) const {
    const DeviceTypeVersion* type = catalog->current()->device_type(name);
    return type ? type->version : 0;
  }
};

constexpr double kKnots10 = 10 * 1852.0 / 3600.0;
constexpr double kKmh10 = 10 / 3.6;

}  // namespace

TEST_CASE("a device type is created, updated, rolled back, deleted and restored as new versions") {
  Fixture f;
  REQUIRE(f.catalog->put_device_type("phone", phone("knots", kKnots10), false).has_value());
  CHECK(f.active_version("phone") == 1);
  const auto before_update = f.catalog->current();

  REQUIRE(f.catalog->put_device_type("phone", phone("kmh", kKmh10), false).has_value());
  CHECK(f.active_version("phone") == 2);
  CHECK(before_update->device_type("phone")->version == 1);  // a reader's snapshot never changes

  const auto rolled = f.catalog->rollback_device_type("phone");
  REQUIRE(rolled.has_value());
  CHECK(rolled->find(R"("rolled_back_to":1)") != std::string::npos);
  CHECK(f.active_version("phone") == 3);
  CHECK(f.catalog->current()->device_type("phone")->definition_json ==
        f.catalog->current()->device_type("phone")->definition_json);

  REQUIRE(f.catalog->delete_device_type("phone").has_value());
  CHECK(f.active_version("phone") == 0);
  CHECK(f.catalog->current()->by_http_path("/osmand") == nullptr);
  REQUIRE(f.catalog->rollback_device_type("phone").has_value());  // undelete: the last version that existed
  CHECK(f.active_version("phone") == 5);
  CHECK(f.catalog->current()->by_http_path("/osmand") != nullptr);

  const auto history = f.catalog->get_device_type("phone", 2);
  REQUIRE(history.has_value());
  CHECK(history->find("kmh") != std::string::npos);
  CHECK(history->find(R"("deleted":true)") != std::string::npos);
}

TEST_CASE("a definition is refused whole, by name, when an option or a sample is wrong") {
  Fixture f;
  const auto bad_option = f.catalog->put_device_type("phone", phone("knot", kKnots10), false);
  REQUIRE_FALSE(bad_option.has_value());
  CHECK(bad_option.error().status == 422);
  CHECK(bad_option.error().message.find("codec_options.speed_unit") != std::string::npos);

  const auto bad_sample = f.catalog->put_device_type("phone", phone("kmh", kKnots10), false);
  REQUIRE_FALSE(bad_sample.has_value());
  CHECK(bad_sample.error().code == "sample_failed");
  CHECK(bad_sample.error().message.find("speed is 2.77") != std::string::npos);
  CHECK(f.active_version("phone") == 0);

  const auto unknown_key = f.catalog->put_device_type("phone", R"({"codec":"json","topic":"x"})", false);
  REQUIRE_FALSE(unknown_key.has_value());
  CHECK(unknown_key.error().message == "topic: unknown key");

  CHECK(f.catalog->put_device_type("phone", "{not json", false).error().status == 400);
  CHECK(f.catalog->put_device_type("phone", R"({"name":"other"})", false).error().status == 422);
  CHECK(f.catalog->put_device_type("tracker", R"({"codec":"json"})", false).error().code == "managed_by_config_file");

  REQUIRE(f.catalog->put_device_type("phone", phone("knots", kKnots10), false).has_value());
  CHECK(f.catalog->put_device_type("other", phone("knots", kKnots10), false).error().code == "http_path_taken");
}

TEST_CASE("a dry run writes nothing; an uploaded payload dry run shows records and envelopes") {
  Fixture f;
  const auto dry = f.catalog->put_device_type("phone", phone("knots", kKnots10), true);
  REQUIRE(dry.has_value());
  CHECK(dry->find(R"("dry_run":true)") != std::string::npos);
  CHECK(f.active_version("phone") == 0);
  CHECK_FALSE(std::filesystem::exists(f.file));

  REQUIRE(f.catalog->put_device_type("phone", phone("knots", kKnots10), false).has_value());
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  const auto run = f.catalog->dry_run("phone", "application/x-www-form-urlencoded",
                                      "id=p&timestamp=" + std::to_string(now_s.count()) + "&lat=95&lon=2");
  REQUIRE(run.has_value());
  CHECK(run->find("must be within [-90, 90]") != std::string::npos);
  CHECK(f.catalog->dry_run("nope", "application/json", "{}").error().status == 404);
}

TEST_CASE("the file store brings every version and device back after a restart") {
  Fixture f;
  REQUIRE(f.catalog->put_device_type("phone", phone("knots", kKnots10), false).has_value());
  REQUIRE(f.catalog->put_device_type("phone", phone("kmh", kKmh10), false).has_value());
  REQUIRE(f.catalog->put_device("acme", "phone-1", R"({"device_type":"phone","token":"p1"})").has_value());
  const std::string definition = f.catalog->current()->device_type("phone")->definition_json;
  f.restart();
  CHECK(f.active_version("phone") == 2);
  CHECK(f.catalog->current()->device_type("phone")->definition_json == definition);
  const DeviceIdentity* device = f.catalog->current()->devices().authenticate("p1");
  REQUIRE(device != nullptr);
  CHECK(device->device_id == "phone-1");

  REQUIRE(f.catalog->delete_device("acme", "phone-1").has_value());
  f.restart();
  CHECK(f.catalog->current()->devices().authenticate("p1") == nullptr);
  CHECK(f.catalog->current()->devices().authenticate("truck-token") != nullptr);  // the file's device

  // A write cut short by a crash leaves a torn last line, which is ignored.
  std::ofstream(f.file, std::ios::app) << "device-type/phone/9\t{\"codec\":";
  f.restart();
  CHECK(f.active_version("phone") == 2);
}

TEST_CASE("devices: tokens hashed, unique, only for types their tenant may use") {
  Fixture f;
  REQUIRE(f.catalog->put_device_type("phone", phone("knots", kKnots10), false).has_value());
  CHECK(f.catalog->put_device("acme", "p1", R"({"device_type":"phone","token":"secret"})").has_value());
  CHECK(f.catalog->put_device("acme", "p2", R"({"device_type":"phone","token":"secret"})").error().code == "token_in_use");
  CHECK(f.catalog->put_device("globex", "p3", R"({"device_type":"phone","token":"s3"})").error().message.find("not available to tenant globex") !=
        std::string::npos);
  CHECK(f.catalog->put_device("acme", "p4", R"({"device_type":"ghost","token":"s4"})").error().code == "invalid_device");
  CHECK(f.catalog->put_device("acme", "truck-1", R"({"device_type":"tracker","token":"s5"})").error().code ==
        "managed_by_config_file");
  const auto listed = f.catalog->list_devices();
  REQUIRE(listed.has_value());
  CHECK(listed->find("secret") == std::string::npos);  // never echoed, never stored in clear
}

TEST_CASE("the admin API authenticates, routes and names what is wrong") {
  Fixture f;
  const AdminConfig& admin = f.config.admin;
  auto call = [&](std::string_view method, std::string_view target, std::string_view token = "admin",
                  std::string_view body = "") {
    const std::string authorization = "Bearer " + std::string(token);
    return handle_admin_request(*f.catalog, admin, AdminRequest{method, target, authorization, "application/json", body});
  };
  CHECK(call("GET", "/admin/v1/device-types", "wrong").status == 401);
  CHECK(call("GET", "/admin/v1/device-types").status == 200);
  CHECK(call("POST", "/admin/v1/device-types").status == 405);
  CHECK(call("PUT", "/admin/v1/device-types/phone?dry_run=true", "admin", phone("knots", kKnots10)).status == 200);
  CHECK(f.active_version("phone") == 0);
  CHECK(call("PUT", "/admin/v1/device-types/phone", "admin", phone("knots", kKnots10)).status == 200);
  CHECK(call("GET", "/admin/v1/device-types/phone?version=x").status == 400);
  CHECK(call("GET", "/admin/v1/device-types/phone?version=1").status == 200);
  CHECK(call("GET", "/admin/v1/nothing").status == 404);
  CHECK(call("DELETE", "/admin/v1/devices/acme").status == 404);

  const AdminConfig off;
  CHECK(handle_admin_request(*f.catalog, off, AdminRequest{"GET", "/admin/v1/device-types", "Bearer admin", "", ""})
            .status == 404);
}
