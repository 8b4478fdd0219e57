// Hostile and TLS clients against the real telegate binary (local log sink: no broker needed):
// curl and mosquitto_pub over TLS with and without client certificates, a certificate rotated
// under a running gateway (seen by openssl s_client), the per-source connection cap, a
// slowloris trickle, oversized headers and bodies, deeply nested JSON, garbage bytes and a
// silent TLS client. Every refusal must be the documented answer and the gateway must keep
// serving afterwards. docs/security.md's hostile-client table is filled from this test's runs
// (run it with -s to see the measured times).
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway_process.hpp"
#include "telegate/gateway/auth.hpp"
#include "test_pki.hpp"

using namespace telegate;
using namespace telegate::testing;
using Clock = std::chrono::steady_clock;

namespace {

struct Ports {
  std::uint16_t https = free_port();
  std::uint16_t mqtt = free_port();
  std::uint16_t mqtts = free_port();
};

// One tenant with two trackers; TLS on both stream listeners, small limits so that each can
// be hit quickly.
std::string config_for(const TestPki& pki, const Ports& ports, const std::string& client_auth) {
  const std::string tls = "{port: %PORT%, cert_file: " + pki.server_cert().string() +
                          ", key_file: " + pki.server_key().string() + ", client_ca_file: " + pki.ca_cert().string() +
                          ", client_auth: " + client_auth + ", reload_interval_s: 1, handshake_timeout_s: 2}";
  auto with_port = [&](std::uint16_t port) {
    std::string text = tls;
    text.replace(text.find("%PORT%"), 6, std::to_string(port));
    return text;
  };
  return "instance_id: it-security\n"
         "http: {max_body_bytes: 65536, max_header_bytes: 4096, idle_timeout_s: 5, request_timeout_s: 2,\n"
         "       max_connections_per_source: 6, tls: " + with_port(ports.https) + "}\n"
         "mqtt: {enabled: true, address: 127.0.0.1, port: " + std::to_string(ports.mqtt) +
         ", connect_timeout_s: 3, tls: " + with_port(ports.mqtts) + "}\n"
         "sink: {type: local_log, local_log: {directory: data/log}}\n"
         "decode: {max_records: 100}\n"
         "device_types:\n"
         "  - {name: tracker, codec: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n"
         "      - {id: truck-2, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-2-token") + "}\n"
         "  - name: globex\n"
         "    devices:\n"
         "      - {id: van-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("van-1-token") + "}\n";
}

std::string location(const std::string& device, const std::string& msg_id) {
  return R"({"device_id":")" + device + R"(","type":"location","ts":)" + std::to_string(unix_ms()) +
         R"(,"msg_id":")" + msg_id + R"(","lat":46.05,"lon":14.51})";
}

std::string https(std::uint16_t port, const std::string& path) {
  return "https://127.0.0.1:" + std::to_string(port) + path;
}

HttpResult https_post(const TestPki& pki, std::uint16_t port, const std::string& body,
                      std::vector<std::string> credentials) {
  std::vector<std::string> argv = {"--cacert", pki.ca_cert().string(), "-X", "POST", "--data-binary", body,
                                   "-H", "Content-Type: application/json"};
  argv.insert(argv.end(), credentials.begin(), credentials.end());
  argv.push_back(https(port, "/v1/telemetry"));
  return curl(argv);
}

std::vector<std::string> client_cert(const TestPki& pki, const std::string& name) {
  return {"--cert", (pki.dir() / (name + ".crt")).string(), "--key", (pki.dir() / (name + ".key")).string()};
}

CommandResult mosquitto_pub_tls(const TestPki& pki, std::uint16_t port, const std::string& topic,
                                const std::string& message, std::vector<std::string> credentials) {
  std::vector<std::string> argv = {"timeout", "20", "mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port),
                                   "--cafile", pki.ca_cert().string(), "-V", "5", "-q", "1", "-t", topic, "-m",
                                   message, "-d"};
  argv.insert(argv.end(), credentials.begin(), credentials.end());
  auto result = run_command(argv);
  result.out += result.err;
  return result;
}

// The server certificate's subject as openssl s_client sees it on a new connection.
std::string served_subject(const TestPki& pki, std::uint16_t port) {
  const auto result = run_command({"sh", "-c",
                                   "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -CAfile " +
                                       pki.ca_cert().string() + " </dev/null 2>/dev/null | openssl x509 -noout -subject -serial"});
  return result.out;
}

// Waits up to `limit` for the server to close `fd` (EOF or reset); the time it took, or -1 s.
std::chrono::milliseconds closed_within(int fd, std::chrono::milliseconds limit) {
  const auto start = Clock::now();
  while (Clock::now() - start < limit) {
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 50) > 0) {
      char byte[256];
      const ssize_t got = ::recv(fd, byte, sizeof(byte), 0);
      if (got <= 0) return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
  }
  return std::chrono::milliseconds(-1);
}

std::string metric_line(const GatewayProcess& gateway, const std::string& prefix) {
  const std::string metrics = curl_get(gateway.url("/metrics")).body;
  const std::size_t at = metrics.find(prefix);
  return at == std::string::npos ? std::string() : metrics.substr(at, metrics.find('\n', at) - at);
}

std::string dump_log(const TempDir& dir) {
  return run_telegate({"log", "dump", "--dir", (dir.path() / "data" / "log").string()}).out;
}

// A test PKI (with a client certificate for acme/truck-1) and a ready gateway using it.
struct SecureGateway {
  explicit SecureGateway(const std::string& client_auth)
      : pki(dir.path() / "pki"), gateway(dir.path(), config_for(pki, ports, client_auth)) {
    pki.issue_client("truck-1", "acme/truck-1");
    gateway.start();
    gateway.wait_ready();
  }
  TempDir dir;
  TestPki pki;
  Ports ports;
  GatewayProcess gateway;
};

}  // namespace

TEST_CASE("TLS: curl and mosquitto_pub with tokens and with client certificates (client_auth optional)") {
  SecureGateway setup("optional");
  auto& [dir, pki, ports, gateway] = setup;
  pki.issue_client("ghost", "acme/ghost");
  TestPki rogue(dir.path() / "rogue");  // a CA the gateway does not trust
  rogue.issue_client("truck-1", "acme/truck-1");

  auto token = https_post(pki, ports.https, location("truck-1", "tls-token"), {"-H", "Authorization: Bearer truck-1-token"});
  CHECK(token.status == 200);
  auto cert = https_post(pki, ports.https, location("truck-1", "tls-cert"), client_cert(pki, "truck-1"));
  CHECK(cert.status == 200);
  CHECK(cert.body.find(R"("msg_ids":["tls-cert"])") != std::string::npos);
  // The certificate names the device: a record for another device — in its tenant or another — is refused.
  CHECK(https_post(pki, ports.https, location("truck-2", "tls-other"), client_cert(pki, "truck-1")).status == 403);
  CHECK(https_post(pki, ports.https, location("van-1", "tls-other-tenant"), client_cert(pki, "truck-1")).status == 403);
  // A verified certificate for no provisioned device, and no certificate and no token.
  auto ghost = https_post(pki, ports.https, location("ghost", "tls-ghost"), client_cert(pki, "ghost"));
  CHECK(ghost.status == 401);
  CHECK(https_post(pki, ports.https, location("truck-1", "tls-none"), {}).status == 401);
  // A certificate from another CA fails the handshake: curl gets no HTTP answer at all.
  CHECK(https_post(pki, ports.https, location("truck-1", "tls-rogue"), client_cert(rogue, "truck-1")).status == 0);
  // Plain HTTP keeps its own port.
  CHECK(curl_get(gateway.url("/healthz")).status == 200);

  const std::string record = location("truck-1", "mqtts-token");
  auto mqtt_token = mosquitto_pub_tls(pki, ports.mqtts, "acme/truck-1/location", record,
                                      {"-u", "truck-1", "-P", "truck-1-token"});
  CHECK_MESSAGE(mqtt_token.exit_code == 0, mqtt_token.out);
  auto mqtt_cert = mosquitto_pub_tls(pki, ports.mqtts, "acme/truck-1/location", location("truck-1", "mqtts-cert"),
                                     client_cert(pki, "truck-1"));
  CHECK_MESSAGE(mqtt_cert.exit_code == 0, mqtt_cert.out);
  // Another tenant's topic with truck-1's certificate: PUBACK "Not authorized" (0x87).
  auto mqtt_other = mosquitto_pub_tls(pki, ports.mqtts, "globex/van-1/location", location("van-1", "mqtts-x"),
                                      client_cert(pki, "truck-1"));
  CHECK(mqtt_other.out.find("PUBACK") != std::string::npos);
  CHECK(mqtt_other.out.find("135") != std::string::npos);
  // No certificate and no password: CONNACK "Bad User Name or Password".
  auto mqtt_none = mosquitto_pub_tls(pki, ports.mqtts, "acme/truck-1/location", record, {});
  CHECK(mqtt_none.exit_code != 0);
  CHECK_MESSAGE(mqtt_none.out.find("CONNACK (134)") != std::string::npos, mqtt_none.out);

  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);
  const std::string log = dump_log(dir);
  for (const char* msg_id : {"tls-token", "tls-cert", "mqtts-token", "mqtts-cert"}) {
    CHECK_MESSAGE(log.find(std::string("\"msg_id\":\"") + msg_id + "\"") != std::string::npos, msg_id);
  }
  for (const char* msg_id : {"tls-other", "tls-other-tenant", "tls-ghost", "tls-none", "tls-rogue", "mqtts-x"}) {
    CHECK_MESSAGE(log.find(std::string("\"msg_id\":\"") + msg_id + "\"") == std::string::npos, msg_id);
  }
}

TEST_CASE("TLS: client_auth require refuses the handshake without a client certificate") {
  SecureGateway setup("require");
  auto& [dir, pki, ports, gateway] = setup;
  CHECK(https_post(pki, ports.https, location("truck-1", "req-none"), {"-H", "Authorization: Bearer truck-1-token"}).status == 0);
  CHECK(https_post(pki, ports.https, location("truck-1", "req-cert"), client_cert(pki, "truck-1")).status == 200);
  auto refused = mosquitto_pub_tls(pki, ports.mqtts, "acme/truck-1/location", location("truck-1", "req-mqtt-none"),
                                   {"-u", "truck-1", "-P", "truck-1-token"});
  CHECK(refused.exit_code != 0);
  CHECK(refused.out.find("CONNACK") == std::string::npos);  // refused in the handshake, before MQTT
  auto accepted = mosquitto_pub_tls(pki, ports.mqtts, "acme/truck-1/location", location("truck-1", "req-mqtt-cert"),
                                    client_cert(pki, "truck-1"));
  CHECK_MESSAGE(accepted.exit_code == 0, accepted.out);
  CHECK(metric_line(gateway, "telegate_connections_refused_total{listener=\"http\",reason=\"tls_handshake\"}") !=
        "telegate_connections_refused_total{listener=\"http\",reason=\"tls_handshake\"} 0");
}

TEST_CASE("TLS: a rotated certificate is served to new connections without a restart; a broken one is not") {
  SecureGateway setup("none");
  auto& [dir, pki, ports, gateway] = setup;
  CHECK(served_subject(pki, ports.https).find("CN = server-1") != std::string::npos);
  CHECK(served_subject(pki, ports.mqtts).find("CN = server-1") != std::string::npos);

  pki.issue_server("server", "server-2", 1002);
  const auto start = Clock::now();
  while (served_subject(pki, ports.https).find("CN = server-2") == std::string::npos &&
         Clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  MESSAGE("new certificate served after " << took.count() << " ms (reload_interval_s 1)");
  CHECK(served_subject(pki, ports.https).find("serial=03EA") != std::string::npos);  // 1002
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // both listeners poll on their own
  CHECK(served_subject(pki, ports.mqtts).find("CN = server-2") != std::string::npos);
  CHECK(metric_line(gateway, "telegate_tls_reload_total{listener=\"http\",result=\"success\"}").ends_with(" 1"));

  std::ofstream(pki.server_cert(), std::ios::trunc) << "-----BEGIN CERTIFICATE-----\ntruncated\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  CHECK(metric_line(gateway, "telegate_tls_reload_total{listener=\"http\",result=\"failure\"}").ends_with(" 1"));
  CHECK(served_subject(pki, ports.https).find("CN = server-2") != std::string::npos);
  CHECK(gateway.log_tail().find("reload failed, keeping the previous certificate: http.tls.cert_file") != std::string::npos);
}

TEST_CASE("hostile clients: connection cap, slowloris, oversized headers and bodies, deep JSON, garbage") {
  SecureGateway setup("none");
  auto& [dir, pki, ports, gateway] = setup;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // wait_ready's connections are closed

  SUBCASE("max_connections_per_source: the 7th connection from one address is closed at once") {
    std::vector<int> held;
    for (int i = 0; i < 6; ++i) held.push_back(connect_tcp(gateway.port()));
    for (int fd : held) CHECK(closed_within(fd, std::chrono::milliseconds(100)).count() == -1);  // served: kept open
    const int refused = connect_tcp(gateway.port());
    const auto closed = closed_within(refused, std::chrono::seconds(2));
    MESSAGE("7th connection closed after " << closed.count() << " ms");
    CHECK(closed.count() >= 0);
    ::close(refused);
    for (int fd : held) ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(curl_get(gateway.url("/healthz")).status == 200);  // the places are free again
    CHECK(metric_line(gateway, "telegate_connections_refused_total{listener=\"http\",reason=\"per_source\"}").ends_with(" 1"));
  }

  SUBCASE("slowloris: headers trickled a byte every 200 ms are cut at request_timeout_s (2 s)") {
    const int fd = connect_tcp(gateway.port());
    const std::string request = "POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a');
    const auto start = Clock::now();
    std::chrono::milliseconds closed{-1};
    for (char byte : request) {
      if (::send(fd, &byte, 1, MSG_NOSIGNAL) != 1) break;
      if (auto at = closed_within(fd, std::chrono::milliseconds(200)); at.count() >= 0) {
        closed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
        break;
      }
    }
    ::close(fd);
    MESSAGE("slowloris connection closed after " << closed.count() << " ms");
    CHECK(closed.count() >= 1800);
    CHECK(closed.count() <= 3500);
  }

  SUBCASE("a kept-alive connection is cut idle_timeout_s (5 s) after its last answer, not at request_timeout_s") {
    const int fd = connect_tcp(gateway.port());
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    const auto closed = closed_within(fd, std::chrono::seconds(9));  // reads the answer, then waits
    ::close(fd);
    MESSAGE("idle connection closed after " << closed.count() << " ms");
    CHECK(closed.count() >= 4500);
    CHECK(closed.count() <= 6500);
  }

  SUBCASE("a silent client on a TLS port is cut at handshake_timeout_s (2 s)") {
    for (const auto& [listener, port] : {std::pair<std::string_view, std::uint16_t>{"http", ports.https}, {"mqtt", ports.mqtts}}) {
      const int fd = connect_tcp(port);
      const auto closed = closed_within(fd, std::chrono::seconds(5));
      ::close(fd);
      MESSAGE("silent client on the " << listener << " TLS port closed after " << closed.count() << " ms");
      CHECK(closed.count() >= 1800);
      CHECK(closed.count() <= 3500);
    }
  }

  SUBCASE("oversized headers: 431 naming http.max_header_bytes") {
    auto answer = curl({"-H", "X-Big: " + std::string(8000, 'h'), gateway.url("/v1/telemetry")});
    CHECK(answer.status == 431);
    CHECK(answer.body.find("http.max_header_bytes (4096 bytes)") != std::string::npos);
  }

  SUBCASE("oversized body: 413 naming http.max_body_bytes; too many records: 413") {
    auto big = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json",
                         "[" + location("truck-1", "big") + "," + std::string(70'000, ' ') + "]");
    CHECK(big.status == 413);
    CHECK(big.body.find("http.max_body_bytes") != std::string::npos);
    std::string many = "[";
    for (int i = 0; i < 101; ++i) many += (i ? "," : "") + location("truck-1", "many-" + std::to_string(i));
    auto answer = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", many + "]");
    CHECK(answer.status == 413);
    MESSAGE("101 records: " << answer.status << " " << answer.body);
  }

  SUBCASE("deeply nested JSON: refused where it is read, skipped where it is not, never a crash") {
    // The JSON codec walks with simdjson On-Demand, iteratively: nesting costs no stack.
    const std::string deep = std::string(20'000, '[') + std::string(20'000, ']');
    auto top = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", deep);
    MESSAGE("20000 nested arrays as the body: " << top.status << " " << top.body);
    CHECK(top.status == 422);
    CHECK(top.body.find("a record must be a JSON object, not an array") != std::string::npos);
    const std::string record = location("truck-1", "deep-field");
    auto nest = [&](const std::string& field) {
      return record.substr(0, record.size() - 1) + ",\"" + field + "\":" + std::string(20'000, '[') +
             std::string(20'000, ']') + "}";
    };
    auto known = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", nest("lat"));
    MESSAGE("20000 nested arrays as lat: " << known.status << " " << known.body);
    CHECK(known.status == 422);
    CHECK(known.body.find(R"("field":"lat")") != std::string::npos);
    // An unknown field is ignored, whatever its shape: the record is accepted without it.
    auto unknown = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", nest("extra"));
    MESSAGE("20000 nested arrays in an unknown field: " << unknown.status << " " << unknown.body);
    CHECK(unknown.status == 200);
    auto unclosed = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json",
                              record.substr(0, record.size() - 1) + R"(,"extra":)" + std::string(20'000, '['));
    MESSAGE("20000 unclosed arrays: " << unclosed.status << " " << unclosed.body);
    CHECK(unclosed.status == 400);
  }

  SUBCASE("garbage instead of HTTP: 400; plain HTTP to the TLS port: closed") {
    const int fd = connect_tcp(gateway.port());
    const std::string garbage("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 26);
    CHECK(::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(garbage.size()));
    char answer[64] = {};
    pollfd readable{fd, POLLIN, 0};
    REQUIRE(::poll(&readable, 1, 3000) == 1);
    CHECK(::recv(fd, answer, sizeof(answer) - 1, 0) > 0);
    CHECK(std::string(answer).starts_with("HTTP/1.1 400"));
    ::close(fd);
    CHECK(curl_get("http://127.0.0.1:" + std::to_string(ports.https) + "/healthz").status == 0);
  }

  CHECK(curl_get(gateway.url("/healthz")).status == 200);
  CHECK(https_post(pki, ports.https, location("truck-1", "still-serving"), {"-H", "Authorization: Bearer truck-1-token"})
            .status == 200);
}
