// Runs the real `telegate` binary as a child process for integration tests, and drives it with
// real third-party clients (curl).
//
// Lifecycle: one GatewayProcess per test scenario, owned by the test thread. The destructor
// SIGKILLs a child that is still running, so a failing test never leaves a gateway behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace telegate::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t free_port();
// The same for UDP (CoAP).
std::uint16_t free_udp_port();

// A blocking TCP connection to 127.0.0.1:port, for tests that write raw bytes; throws when
// the connection is refused.
int connect_tcp(std::uint16_t port);

// A short random id that keeps one test run's topics, instance ids and msg_ids apart from
// every other run's on the shared broker.
std::string unique_run_id();

// Now, as Unix epoch milliseconds (device payloads carry event times in it).
std::int64_t unix_ms();

// Bootstrap address of the test broker (TELEGATE_KAFKA_BOOTSTRAP, default 127.0.0.1:19092).
std::string kafka_bootstrap();

// The `sink:` block every Kafka test gateway starts with: the test broker, `topic_template`,
// a commit every `transaction_interval_ms` — minimum and maximum interval both, so that every
// transaction stays open that long and a test can tell an ack written from the commit from one
// written before it — and `more_kafka_keys` (", key: value" pairs).
std::string kafka_sink_yaml(const std::string& topic_template, int transaction_interval_ms,
                            const std::string& more_kafka_keys = "");

// A fresh, empty directory under the system temp dir; removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

class GatewayProcess {
 public:
  // `config_yaml` is written to a file in `work_dir`; http.port is set to a free port. An empty
  // `config_yaml` runs the embedded default (no --config). The gateway runs in `work_dir`.
  GatewayProcess(std::filesystem::path work_dir, std::string config_yaml);
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  void start();
  // Polls GET /readyz until 200; throws with the gateway's log tail if it doesn't come up.
  void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(30));
  void signal(int signal_number);
  // Waits for the child to exit; returns its exit status (128+N when killed by signal N).
  int wait();
  bool running() const noexcept { return pid_ > 0; }

  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }  // for /proc/<pid>/status (memory) checks
  std::string url(const std::string& path) const;
  std::string log_tail() const;

 private:
  std::filesystem::path work_dir_;
  std::filesystem::path config_path_;
  std::filesystem::path log_path_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// A private Mosquitto broker for one test: its own port on 127.0.0.1, anonymous access, and
// (for restart tests) persistence in `work_dir`. Lifecycle: owned by the test thread; started
// by the constructor, SIGKILLed by the destructor so a failing test never leaves one behind.
class MosquittoProcess {
 public:
  // `extra_config` is appended to the generated mosquitto.conf (e.g. "max_queued_messages 0").
  explicit MosquittoProcess(std::filesystem::path work_dir, std::string extra_config = {});
  ~MosquittoProcess();
  MosquittoProcess(const MosquittoProcess&) = delete;
  MosquittoProcess& operator=(const MosquittoProcess&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string log_tail() const;

 private:
  std::filesystem::path log_path_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

struct HttpResult {
  int status = 0;  // 0 when curl could not connect
  std::string body;
  std::string headers;
};

// Runs the real curl binary with `args` (method, headers, data, URL) and returns what it got.
HttpResult curl(std::vector<std::string> args);
// POSTs `body` with the real curl binary.
HttpResult curl_post(const std::string& url, const std::string& bearer_token, const std::string& content_type,
                     const std::string& body);
HttpResult curl_get(const std::string& url);

struct CommandResult {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// How long run_command lets a program run. One that is still running then gets SIGTERM (and
// SIGKILL 5 s later): the test fails on its exit code with whatever the program printed (the
// simulator prints where it was stuck), not by ctest's timeout, which prints nothing of it.
inline constexpr std::chrono::seconds kCommandLimit{120};

// Runs any program (found on PATH) to completion: for third-party clients such as coap-client.
// A program stopped at `limit` exits 128+SIGTERM, and `err` ends with a line that says so.
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::seconds limit = kCommandLimit);

// Runs the telegate binary with `args` to completion (for subcommands and start-up errors).
CommandResult run_telegate(const std::vector<std::string>& args);

}  // namespace telegate::testing
