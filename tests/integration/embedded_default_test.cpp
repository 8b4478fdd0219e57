// The README's first command in a test: telegate on its embedded default (local durable log,
// demo device), a curl ping, a graceful stop, and `telegate log dump` reading it back. Plus the
// operator-facing start-up errors: a bad key is exit code 2 with the key named.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <sstream>

#include "gateway_process.hpp"

using namespace telegate::testing;

TEST_CASE("embedded default: accept over HTTP, keep in the local log, dump it back") {
  TempDir dir;
  GatewayProcess gateway(dir.path(), "");
  gateway.start();
  gateway.wait_ready();
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string body = R"([{"device_id":"demo-device-1","type":"location","ts":)" + std::to_string(now) +
                           R"(,"msg_id":"readme-1","lat":46.05,"lon":14.51},)" +
                           R"({"device_id":"demo-device-1","type":"sensor","ts":)" + std::to_string(now) +
                           R"(,"msg_id":"readme-2","name":"temperature","value":21.5,"unit":"Cel"}])";
  const auto answer = curl_post(gateway.url("/v1/telemetry"), "demo-token", "application/json", body);
  CHECK(answer.status == 200);
  CHECK(answer.body.find(R"("msg_ids":["readme-1","readme-2"])") != std::string::npos);
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  const auto dump = run_telegate({"log", "dump", "--dir", (dir.path() / "data" / "log").string()});
  CHECK(dump.exit_code == 0);
  CHECK(dump.err.find("2 records") != std::string::npos);
  std::istringstream lines(dump.out);
  std::string first, second, extra;
  REQUIRE(std::getline(lines, first));
  REQUIRE(std::getline(lines, second));
  CHECK_FALSE(std::getline(lines, extra));
  CHECK(first.find(R"("topic":"telemetry.demo.location")") != std::string::npos);
  CHECK(first.find(R"("key":"demo-device-1")") != std::string::npos);
  CHECK(first.find(R"("msg_id":"readme-1")") != std::string::npos);
  CHECK(first.find(R"("lat":46.05)") != std::string::npos);
  CHECK(second.find(R"("topic":"telemetry.demo.sensor")") != std::string::npos);
  CHECK(second.find(R"("name":"temperature","value":21.5,"unit":"Cel")") != std::string::npos);
}

TEST_CASE("start-up refuses bad configuration with exit code 2 and the key named") {
  const auto bad_port = run_telegate({"--set", "http.port=eighty"});
  CHECK(bad_port.exit_code == 2);
  CHECK(bad_port.err.find("http.port") != std::string::npos);

  const auto unknown = run_telegate({"check-config", "--set", "sink.kafka.nonsense=1"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("sink.kafka.nonsense: unknown key") != std::string::npos);

  const auto missing_file = run_telegate({"--config", "/nonexistent/telegate.yaml"});
  CHECK(missing_file.exit_code == 2);
  CHECK(missing_file.err.find("/nonexistent/telegate.yaml") != std::string::npos);

  const auto ok = run_telegate({"check-config"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("config ok") != std::string::npos);

  const auto hashed = run_telegate({"hash-token", "demo-token"});
  CHECK(hashed.exit_code == 0);
  CHECK(hashed.out == "7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c\n");
}
