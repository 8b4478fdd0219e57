// gateway/mqtt against a real client: mosquitto_pub (Debian mosquitto-clients, installed by
// scripts/install-deps) publishes to a minimal loopback server made of FrameReader, the
// decoders and the encoders. The client only exits 0 if it accepted our CONNACK and our
// PUBACK / PUBREC + PUBCOMP, so this checks the encoders the way the captures check the
// decoders: against code nobody on the project wrote.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "mqtt/mqtt_packet.hpp"

extern char** environ;

using namespace telegate::gateway::mqtt;

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

void send_all(int fd, const std::vector<std::uint8_t>& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    sent += static_cast<std::size_t>(n);
  }
}

struct Outcome {
  int exit_status = -1;
  bool saw_publish = false;
  bool saw_disconnect = false;
  std::string payload;
};

// Serves one mosquitto_pub run; returns what the client did and how it exited.
Outcome serve_one(ProtocolVersion version, int qos) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(listener.get() >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const std::string port = std::to_string(ntohs(address.sin_port));
  const std::string qos_text = std::to_string(qos);

  std::vector<std::string> args = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port,
                                   "-V", version == ProtocolVersion::v5 ? "mqttv5" : "mqttv311",
                                   "-i", "interop-1", "-t", "acme/truck-1/gps", "-m", "{\"lat\":1}",
                                   "-q", qos_text, "--quiet"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t child = -1;
  REQUIRE(::posix_spawnp(&child, "mosquitto_pub", nullptr, nullptr, argv.data(), environ) == 0);

  Outcome outcome;
  const auto finish = [&] {
    int status = 0;
    for (int i = 0; i < 50; ++i) {  // up to 5 s, then the child we started is killed
      if (::waitpid(child, &status, WNOHANG) == child) {
        outcome.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return;
      }
      ::usleep(100'000);
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  };
  if (!wait_readable(listener.get(), 5000)) {
    finish();
    FAIL("mosquitto_pub did not connect");
  }
  Fd connection(::accept(listener.get(), nullptr, nullptr));
  REQUIRE(connection.get() >= 0);

  FrameReader reader(65'536);
  std::vector<std::uint8_t> out;
  std::uint8_t buffer[4096];
  while (!outcome.saw_disconnect && wait_readable(connection.get(), 5000)) {
    const auto n = ::recv(connection.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    Bytes input(buffer, static_cast<std::size_t>(n));
    while (!input.empty()) {
      const auto step = reader.read(input);
      REQUIRE(step.has_value());
      input = input.subspan(step->consumed);
      if (!step->frame) continue;
      const auto packet = decode_packet(*step->frame, version);
      if (!packet) FAIL(packet.error().message);
      out.clear();
      if (const auto* connect = std::get_if<Connect>(&*packet)) {
        CHECK(connect->version == version);
        CHECK(connect->client_id == "interop-1");
        Connack connack;
        if (version == ProtocolVersion::v5) {
          connack.properties.receive_maximum = 10;
          connack.properties.maximum_packet_size = 65'536;
          connack.properties.topic_alias_maximum = 0;
          connack.properties.retain_available = false;
          connack.properties.wildcard_subscription_available = true;
          connack.properties.subscription_identifiers_available = false;
          connack.properties.shared_subscription_available = false;
          connack.properties.server_keep_alive = 30;
          connack.properties.reason_string = "welcome";
          connack.properties.user_properties = {{"gateway", "telegate"}};
        }
        REQUIRE(encode(connack, version, out).has_value());
      } else if (const auto* publish = std::get_if<Publish>(&*packet)) {
        outcome.saw_publish = true;
        outcome.payload = std::string(publish->payload);
        CHECK(publish->topic == "acme/truck-1/gps");
        CHECK(static_cast<int>(publish->qos) == qos);
        if (publish->qos != QoS::at_most_once) {
          PublishAck ack{.type = publish->qos == QoS::at_least_once ? PacketType::puback : PacketType::pubrec,
                         .packet_id = publish->packet_id};
          if (version == ProtocolVersion::v5) ack.reason_string = "durable";  // the long form
          REQUIRE(encode(ack, version, out).has_value());
        }
      } else if (const auto* ack = std::get_if<PublishAck>(&*packet)) {
        REQUIRE(ack->type == PacketType::pubrel);
        REQUIRE(encode(PublishAck{.type = PacketType::pubcomp, .packet_id = ack->packet_id}, version, out).has_value());
      } else if (std::holds_alternative<Disconnect>(*packet)) {
        outcome.saw_disconnect = true;
      }
      if (!out.empty()) send_all(connection.get(), out);
    }
  }
  finish();
  return outcome;
}

}  // namespace

TEST_CASE("interop: mosquitto_pub completes QoS 0, 1 and 2 in both versions against our answers") {
  bool found = false;
  if (const char* path = std::getenv("PATH")) {
    std::string_view dirs(path);
    while (!dirs.empty() && !found) {
      const auto colon = dirs.find(':');
      found = std::filesystem::exists(std::filesystem::path(dirs.substr(0, colon)) / "mosquitto_pub");
      dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    }
  }
  if (!found) {
    MESSAGE("mosquitto_pub not installed (scripts/install-deps installs mosquitto-clients): skipped");
    return;
  }
  for (const auto version : {ProtocolVersion::v311, ProtocolVersion::v5}) {
    for (const int qos : {0, 1, 2}) {
      CAPTURE(static_cast<int>(version));
      CAPTURE(qos);
      const Outcome outcome = serve_one(version, qos);
      CHECK(outcome.saw_publish);
      CHECK(outcome.payload == "{\"lat\":1}");
      CHECK(outcome.saw_disconnect);
      CHECK(outcome.exit_status == 0);
    }
  }
}
