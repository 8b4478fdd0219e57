#include <doctest/doctest.h>

#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"

using namespace telegate::gateway;

TEST_CASE("sha256_hex matches the published SHA-256 test vector") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a token maps to its device and tenant; others are refused") {
  const std::string yaml = "device_types: [{name: tracker}]\n"
                           "tenants:\n"
                           "  - name: acme\n"
                           "    devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                           sha256_hex("s3cret-1") + "}]\n"
                           "  - name: globex\n"
                           "    devices: [{id: van-9, device_type: tracker, token_sha256: " +
                           sha256_hex("s3cret-2") + "}]\n";
  const DeviceRegistry registry(parse_config(yaml));
  CHECK(registry.size() == 2);

  const DeviceIdentity* truck = registry.authenticate("s3cret-1");
  REQUIRE(truck != nullptr);
  CHECK(truck->tenant == "acme");
  CHECK(truck->device_id == "truck-1");
  CHECK(truck->device_type == "tracker");

  const DeviceIdentity* van = registry.authenticate("s3cret-2");
  REQUIRE(van != nullptr);
  CHECK(van->tenant == "globex");

  CHECK(registry.authenticate("") == nullptr);
  CHECK(registry.authenticate("s3cret-") == nullptr);
  CHECK(registry.authenticate("s3cret-1 ") == nullptr);
  CHECK(registry.authenticate(sha256_hex("s3cret-1")) == nullptr);  // the stored digest is not a token
}

TEST_CASE("the embedded default's demo device answers to demo-token") {
  const DeviceRegistry registry(parse_config(""));
  const DeviceIdentity* demo = registry.authenticate("demo-token");
  REQUIRE(demo != nullptr);
  CHECK(demo->tenant == "demo");
  CHECK(demo->device_id == "demo-device-1");
}
