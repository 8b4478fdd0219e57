#include "test_pki.hpp"

#include <atomic>
#include <fstream>
#include <stdexcept>

#include "gateway_process.hpp"

namespace telegate::testing {

namespace {

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult result = run_command(argv);
  if (result.exit_code != 0) throw std::runtime_error("openssl " + args.front() + " failed: " + result.err);
}

// EC P-256 keys: generated in milliseconds, where RSA would slow every TLS test down.
std::vector<std::string> new_key(const std::filesystem::path& key) {
  return {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.string()};
}

}  // namespace

TestPki::TestPki(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  std::vector<std::string> ca = {"req", "-x509"};
  const auto key = new_key(dir_ / "ca.key");
  ca.insert(ca.end(), key.begin(), key.end());
  ca.insert(ca.end(), {"-out", ca_cert().string(), "-days", "2", "-subj", "/CN=telegate-test-ca"});
  openssl(ca);
  issue_server("server", "server-1", 1001);
}

void TestPki::issue_server(const std::string& name, const std::string& cn, int serial) const {
  issue(name, cn, serial, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
}

void TestPki::issue_client(const std::string& name, const std::string& cn) const {
  static std::atomic<int> serial{5000};
  issue(name, cn, ++serial, "extendedKeyUsage=clientAuth\n");
}

void TestPki::issue(const std::string& name, const std::string& cn, int serial, const std::string& extensions) const {
  const auto csr = dir_ / (name + ".csr");
  const auto ext = dir_ / (name + ".ext");
  std::ofstream(ext) << extensions;
  // Written next to the final paths and renamed over them, so that a reloading gateway never
  // sees a half-written certificate.
  const auto cert_tmp = dir_ / (name + ".crt.tmp");
  const auto key_tmp = dir_ / (name + ".key.tmp");
  std::vector<std::string> request = {"req"};
  const auto key = new_key(key_tmp);
  request.insert(request.end(), key.begin(), key.end());
  std::string subject = "/CN=";
  for (char c : cn) subject += c == '/' ? std::string("\\/") : std::string(1, c);  // "acme/truck-1" is one CN
  request.insert(request.end(), {"-out", csr.string(), "-subj", subject});
  openssl(request);
  openssl({"x509", "-req", "-in", csr.string(), "-CA", ca_cert().string(), "-CAkey", (dir_ / "ca.key").string(),
           "-set_serial", std::to_string(serial), "-days", "2", "-extfile", ext.string(), "-out", cert_tmp.string()});
  std::filesystem::rename(key_tmp, dir_ / (name + ".key"));
  std::filesystem::rename(cert_tmp, dir_ / (name + ".crt"));
}

}  // namespace telegate::testing
