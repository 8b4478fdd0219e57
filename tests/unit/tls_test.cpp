// The TLS context holder (load, errors naming the key and file, reload on change, a bad new
// file keeping the old context), the connection caps and the new config keys. Certificates are
// made at test time by the real openssl CLI (tests/support/test_pki.hpp).
#include <doctest/doctest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <prometheus/registry.h>

#include <filesystem>
#include <fstream>

#include "gateway_process.hpp"
#include "src/connection_limiter.hpp"
#include "src/tls_context.hpp"
#include "telegate/gateway/config.hpp"
#include "test_pki.hpp"

using namespace telegate;
using gateway::TlsContextHolder;

namespace {

long served_serial(const TlsContextHolder& holder) {
  X509* certificate = SSL_CTX_get0_certificate(holder.current()->native_handle());
  REQUIRE(certificate != nullptr);
  return ASN1_INTEGER_get(X509_get0_serialNumber(certificate));
}

gateway::TlsListenerConfig tls_config(const testing::TestPki& pki) {
  gateway::TlsListenerConfig config(0);
  config.cert_file = pki.server_cert().string();
  config.key_file = pki.server_key().string();
  return config;
}

std::string construction_error(const gateway::TlsListenerConfig& config) {
  try {
    TlsContextHolder holder(config, "http.tls", nullptr, false);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("TLS context: loads, and start-up errors name the key and the file") {
  testing::TempDir dir;
  testing::TestPki pki(dir.path());
  TlsContextHolder holder(tls_config(pki), "http.tls", nullptr, false);
  CHECK(served_serial(holder) == 1001);

  auto config = tls_config(pki);
  config.cert_file = (dir.path() / "missing.crt").string();
  std::string error = construction_error(config);
  CHECK(error.find("http.tls.cert_file") != std::string::npos);
  CHECK(error.find("missing.crt") != std::string::npos);

  pki.issue_server("other", "server-2", 1002);
  config = tls_config(pki);
  config.key_file = (dir.path() / "other.key").string();  // does not match server.crt
  error = construction_error(config);
  CHECK(error.find("http.tls.key_file") != std::string::npos);
  CHECK(error.find("other.key") != std::string::npos);

  std::ofstream(dir.path() / "garbage.pem") << "not a certificate\n";
  config = tls_config(pki);
  config.client_auth = gateway::TlsClientAuth::require;
  config.client_ca_file = (dir.path() / "garbage.pem").string();
  error = construction_error(config);
  CHECK(error.find("http.tls.client_ca_file") != std::string::npos);
  CHECK(error.find("garbage.pem") != std::string::npos);
}

TEST_CASE("TLS context: a changed certificate is swapped in; a broken one keeps the old context") {
  testing::TempDir dir;
  testing::TestPki pki(dir.path());
  TlsContextHolder holder(tls_config(pki), "mqtt.tls", nullptr, false);
  const auto first = holder.current();
  CHECK(holder.reload_if_changed() == TlsContextHolder::Reload::unchanged);
  CHECK(holder.current() == first);

  pki.issue_server("server", "server-rotated", 1002);  // renamed over server.crt / server.key
  CHECK(holder.reload_if_changed() == TlsContextHolder::Reload::reloaded);
  CHECK(holder.current() != first);
  CHECK(served_serial(holder) == 1002);
  const auto second = holder.current();

  std::ofstream(pki.server_cert(), std::ios::trunc) << "-----BEGIN CERTIFICATE-----\nhalf written";
  CHECK(holder.reload_if_changed() == TlsContextHolder::Reload::failed);
  CHECK(holder.current() == second);
  CHECK(served_serial(holder) == 1002);
  CHECK(holder.reload_if_changed() == TlsContextHolder::Reload::unchanged);  // reported once, not every poll

  pki.issue_server("server", "server-fixed", 1003);
  CHECK(holder.reload_if_changed() == TlsContextHolder::Reload::reloaded);
  CHECK(served_serial(holder) == 1003);
}

TEST_CASE("connection caps: per source and in total, a closed connection frees its place") {
  prometheus::Registry registry;
  gateway::ConnectionLimits limits(3);
  limits.max_connections_per_source = 2;
  gateway::ConnectionLimiter limiter("http", limits, registry);
  const auto a = boost::asio::ip::make_address("192.0.2.1");
  const auto b = boost::asio::ip::make_address("2001:db8::1");
  auto a1 = limiter.admit(a);
  auto a2 = limiter.admit(a);
  CHECK(a1);
  CHECK(a2);
  CHECK_FALSE(limiter.admit(a));  // per source
  auto b1 = limiter.admit(b);
  CHECK(b1);
  CHECK_FALSE(limiter.admit(b));  // total: 3 open
  a1.reset();
  CHECK(limiter.admit(a));  // its place is free again (and released at once: a temporary)
  auto a3 = limiter.admit(a);
  CHECK(a3);
}

TEST_CASE("config: tls and connection-cap keys, errors naming the key") {
  const auto config = gateway::parse_config(
      "http: {max_connections_per_source: 8, max_header_bytes: 4096, tls: {port: 9443, cert_file: /c, key_file: /k, "
      "client_ca_file: /ca, client_auth: require, reload_interval_s: 5}}\n"
      "mqtt: {max_connections: 50, tls: {cert_file: /c, key_file: /k}}\n",
      {});
  CHECK(config.http.tls.enabled());
  CHECK(config.http.tls.port == 9443);
  CHECK(config.http.tls.client_auth == gateway::TlsClientAuth::require);
  CHECK(config.http.tls.reload_interval == std::chrono::seconds(5));
  CHECK(config.http.limits.max_connections_per_source == 8);
  CHECK(config.http.max_header_bytes == 4096);
  CHECK(config.mqtt.tls.port == 8883);
  CHECK(config.mqtt.limits.max_connections == 50);
  CHECK_FALSE(gateway::parse_config("", {}).http.tls.enabled());

  auto error_of = [](const std::string& yaml) {
    try {
      gateway::parse_config(yaml, {});
    } catch (const gateway::ConfigError& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  };
  CHECK(error_of("http: {tls: {cert_file: /c}}").find("http.tls.key_file: is required") != std::string::npos);
  CHECK(error_of("mqtt: {tls: {cert_file: /c, key_file: /k, client_auth: require}}")
            .find("mqtt.tls.client_ca_file: is required") != std::string::npos);
  CHECK(error_of("http: {tls: {cert_file: /c, key_file: /k, client_auth: maybe}}")
            .find("http.tls.client_auth: must be one of none, optional, require") != std::string::npos);
}
