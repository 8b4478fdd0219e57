// A throwaway PKI for TLS tests, made with the real openssl CLI at test time (no key material
// is checked in): a CA, server certificates for 127.0.0.1/localhost and client certificates
// whose subject CN names a device ("<tenant>/<device id>").
//
// Lifecycle: owned by the test thread; the files live in the directory given to it.
#pragma once

#include <filesystem>
#include <string>

namespace telegate::testing {

class TestPki {
 public:
  // Creates <dir>/ca.{crt,key} and the server certificate <dir>/server.{crt,key} (CN
  // "server-1", serial 1001). Throws std::runtime_error with openssl's output on failure.
  explicit TestPki(std::filesystem::path dir);

  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path ca_cert() const { return dir_ / "ca.crt"; }
  std::filesystem::path server_cert() const { return dir_ / "server.crt"; }
  std::filesystem::path server_key() const { return dir_ / "server.key"; }

  // A server certificate for 127.0.0.1 and localhost with subject CN `cn` and `serial`,
  // written to <dir>/<name>.crt and <name>.key.
  void issue_server(const std::string& name, const std::string& cn, int serial) const;
  // A client certificate with subject CN `cn`, written to <dir>/<name>.crt and <name>.key.
  void issue_client(const std::string& name, const std::string& cn) const;

 private:
  void issue(const std::string& name, const std::string& cn, int serial, const std::string& extensions) const;
  std::filesystem::path dir_;
};

}  // namespace telegate::testing
