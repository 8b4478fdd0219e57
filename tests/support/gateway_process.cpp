#include "gateway_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace telegate::testing {

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Runs argv to completion with stdout and stderr sent to files; returns the exit status. A
// child still running at `limit` is stopped (SIGTERM, then SIGKILL) and a line saying so is
// appended to `err`.
int run(const std::vector<std::string>& argv, const std::filesystem::path& out, const std::filesystem::path& err,
        std::chrono::seconds limit = kCommandLimit) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot run " + argv[0]);
  // A pidfd turns readable when the child exits: poll() waits for that or for the limit.
  const int exited = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const auto wait_exit = [exited](std::chrono::milliseconds within) {
    pollfd fd{exited, POLLIN, 0};
    return exited < 0 || ::poll(&fd, 1, static_cast<int>(within.count())) != 0;  // no pidfd: just wait
  };
  if (!wait_exit(limit)) {
    ::kill(pid, SIGTERM);
    if (!wait_exit(std::chrono::seconds(5))) ::kill(pid, SIGKILL);
    std::ofstream(err, std::ios::app) << "\n[test harness: " << argv[0] << " still running after " << limit.count()
                                      << " s; stopped with SIGTERM]\n";
  }
  if (exited >= 0) ::close(exited);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

namespace {

// A port on 127.0.0.1 that the kernel just handed out for a socket of `type`.
std::uint16_t bound_port(int type) {
  const int fd = ::socket(AF_INET, type, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

std::uint16_t free_port() { return bound_port(SOCK_STREAM); }
std::uint16_t free_udp_port() { return bound_port(SOCK_DGRAM); }

int connect_tcp(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

std::string unique_run_id() {
  std::random_device random;
  return std::to_string(random() % 1'000'000'000);
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string kafka_bootstrap() {
  const char* value = std::getenv("TELEGATE_KAFKA_BOOTSTRAP");
  return value && *value ? value : "127.0.0.1:19092";
}

std::string kafka_sink_yaml(const std::string& topic_template, int transaction_interval_ms,
                            const std::string& more_kafka_keys) {
  return "sink:\n"
         "  type: kafka\n"
         "  topic_template: \"" + topic_template + "\"\n" +
         "  kafka: {bootstrap_servers: \"" + kafka_bootstrap() + "\", transaction_min_interval_ms: " +
         std::to_string(transaction_interval_ms) + ", transaction_max_interval_ms: " +
         std::to_string(transaction_interval_ms) + more_kafka_keys + "}\n";
}

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() / ("telegate-test-" + std::to_string(random()) + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

GatewayProcess::GatewayProcess(std::filesystem::path work_dir, std::string config_yaml)
    : work_dir_(std::move(work_dir)),
      config_path_(work_dir_ / "telegate.yaml"),
      log_path_(work_dir_ / "telegate.log"),
      port_(free_port()) {
  if (!config_yaml.empty()) std::ofstream(config_path_) << config_yaml;
}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void GatewayProcess::start() {
  if (pid_ > 0) throw std::logic_error("gateway already running");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addchdir_np(&actions, work_dir_.c_str());
  const std::string port_override = "http.port=" + std::to_string(port_);
  const std::string address_override = "http.address=127.0.0.1";
  std::vector<std::string> argv = {TELEGATE_BINARY, "--set", port_override, "--set", address_override};
  if (std::filesystem::exists(config_path_)) argv.insert(argv.end(), {"--config", config_path_.string()});
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const int spawned = posix_spawn(&pid_, TELEGATE_BINARY, &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = -1;
    throw std::runtime_error(std::string("cannot start ") + TELEGATE_BINARY);
  }
}

void GatewayProcess::wait_ready(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("gateway exited during start-up:\n" + log_tail());
    }
    if (curl_get(url("/readyz")).status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("gateway not ready within timeout:\n" + log_tail());
}

void GatewayProcess::signal(int signal_number) {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

int GatewayProcess::wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string GatewayProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::string GatewayProcess::log_tail() const {
  const std::string log = read_file(log_path_);
  return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
}

MosquittoProcess::MosquittoProcess(std::filesystem::path work_dir, std::string extra_config)
    : log_path_(work_dir / "mosquitto.log"), port_(free_port()) {
  const std::filesystem::path config_path = work_dir / "mosquitto.conf";
  {
    std::ofstream config(config_path);
    config << "listener " << port_ << " 127.0.0.1\n"
           << "allow_anonymous true\n"
           << "persistence true\n"
           << "persistence_location " << work_dir.string() << "/\n"
           << "log_dest stdout\n"
           << "log_type error\nlog_type warning\nlog_type notice\n"
           << extra_config << "\n";
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> argv = {"mosquitto", "-c", config_path.string()};
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const int spawned = posix_spawnp(&pid_, "mosquitto", &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start mosquitto (scripts/install-deps installs it)");
  }
  // Ready once it accepts connections.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (connected) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("mosquitto did not come up: " + log_tail());
}

MosquittoProcess::~MosquittoProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

std::string MosquittoProcess::log_tail() const {
  const std::string log = read_file(log_path_);
  return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
}

HttpResult curl(std::vector<std::string> argv) {
  TempDir scratch;
  const auto body = scratch.path() / "body";
  const auto headers = scratch.path() / "headers";
  argv.insert(argv.begin(), {"curl", "-sS", "--max-time", "60", "-o", body.string(), "-D", headers.string(), "-w",
                             "%{http_code}"});
  const int exit_code = run(argv, scratch.path() / "status", scratch.path() / "stderr");
  HttpResult result;
  const std::string status = read_file(scratch.path() / "status");
  result.status = exit_code == 0 && !status.empty() ? std::stoi(status) : 0;
  result.body = read_file(body);
  result.headers = read_file(headers);
  return result;
}

HttpResult curl_post(const std::string& url, const std::string& bearer_token, const std::string& content_type,
                     const std::string& body) {
  TempDir scratch;
  const auto payload = scratch.path() / "payload";
  std::ofstream(payload, std::ios::binary) << body;
  std::vector<std::string> argv = {"-X", "POST", "--data-binary", "@" + payload.string(), "-H",
                                   "Content-Type: " + content_type};
  if (!bearer_token.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + bearer_token});
  argv.push_back(url);
  return curl(argv);
}

HttpResult curl_get(const std::string& url) { return curl({url}); }

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::seconds limit) {
  TempDir scratch;
  CommandResult result;
  result.exit_code = run(argv, scratch.path() / "out", scratch.path() / "err", limit);
  result.out = read_file(scratch.path() / "out");
  result.err = read_file(scratch.path() / "err");
  return result;
}

CommandResult run_telegate(const std::vector<std::string>& args) {
  TempDir scratch;
  std::vector<std::string> argv = {TELEGATE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult result;
  result.exit_code = run(argv, scratch.path() / "out", scratch.path() / "err");
  result.out = read_file(scratch.path() / "out");
  result.err = read_file(scratch.path() / "err");
  return result;
}

}  // namespace telegate::testing
