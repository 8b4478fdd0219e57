// A Kafka outage with the spool configured: devices keep posting (each retrying a batch with
// the same msg_ids until acknowledged) while the broker is stopped, and keep being acknowledged
// from the spool; when the broker is back the spool is replayed. Audited with read_committed:
// every acknowledged record exactly once, each device's records in the order it sent them.
// Second case: the gateway is SIGKILLed in the middle of the replay and restarted with the same
// instance id; the replay resumes from the last committed position, still exactly once.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "eventually.hpp"
#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::curl_post;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

constexpr int kDevices = 3;
constexpr int kPerBatch = 10;

void kafka(const std::string& action) {
  const auto result = testing::run_command({std::string(TELEGATE_SOURCE_DIR) + "/scripts/kafka/kafka.sh", action});
  REQUIRE_MESSAGE(result.exit_code == 0, "kafka.sh " << action << ": " << result.out << result.err);
}

std::string config(const std::string& run, const std::string& instance, const std::string& spool_extra,
                   const std::string& kafka_extra) {
  std::string devices;
  for (int d = 0; d < kDevices; ++d) {
    devices += std::string(d ? ", " : "") + "{id: dev-" + std::to_string(d) + ", device_type: tracker, token_sha256: " +
               gateway::sha256_hex("dev-" + std::to_string(d) + "-token") + "}";
  }
  return "instance_id: " + instance + "\n" +
         "sink:\n"
         "  type: kafka\n"
         "  topic_template: \"it." + run + ".{tenant}.{type}\"\n" +
         "  kafka: {bootstrap_servers: \"" + testing::kafka_bootstrap() +
         "\", delivery_timeout_ms: 5000" + kafka_extra + ", spool: {directory: spool" + spool_extra + "}}\n" +
         "device_types: [{name: tracker}]\n"
         "tenants: [{name: acme, devices: [" + devices + "]}]\n";
}

// The value of an unlabelled metric on /metrics, or -1.
double metric(const GatewayProcess& gateway, const std::string& name) {
  const auto page = testing::curl_get(gateway.url("/metrics"));
  const std::string prefix = "\n" + name + " ";
  const auto at = page.body.find(prefix);
  return at == std::string::npos ? -1 : std::stod(page.body.substr(at + prefix.size()));
}

// Each poll reads /metrics over HTTP: every 100 ms is often enough.
template <class Predicate>
bool eventually(Predicate&& predicate, std::chrono::seconds patience) {
  return testing::eventually(std::forward<Predicate>(predicate), patience, std::chrono::milliseconds(100));
}

// One device posting batches of kPerBatch records, each retried with the same msg_ids until
// acknowledged; runs until `batches` are acknowledged or `stop` is set between batches.
struct Device {
  int index = 0;
  std::atomic<int> acknowledged_batches{0};
  std::atomic<int> refused{0};
  std::thread thread;

  void run(const GatewayProcess* const* gateway, int batches, const std::atomic<bool>& stop) {
    thread = std::thread([this, gateway, batches, &stop] {
      const std::string id = "dev-" + std::to_string(index);
      const std::int64_t ts = testing::unix_ms() - 10'000;
      for (int batch = 0; batch < batches && !stop; ++batch) {
        std::string body = "[";
        for (int i = 0; i < kPerBatch; ++i) {
          body += std::string(i ? "," : "") + R"({"device_id":")" + id + R"(","type":"location","ts":)" +
                  std::to_string(ts + batch) + R"(,"msg_id":")" + id + "-" + std::to_string(batch * kPerBatch + i) +
                  R"(","lat":46,"lon":14})";
        }
        body += "]";
        for (int attempt = 0; attempt < 2000; ++attempt) {
          const auto answer = curl_post((*gateway)->url("/v1/telemetry"), id + "-token", "application/json", body);
          if (answer.status == 200) {
            acknowledged_batches = batch + 1;
            break;
          }
          ++refused;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
  }
};

// Reads the topic back and checks: every acknowledged record once, per-device order.
void audit(const std::string& run, const std::vector<std::unique_ptr<Device>>& devices) {
  std::size_t acknowledged = 0;
  for (const auto& device : devices) acknowledged += static_cast<std::size_t>(device->acknowledged_batches) * kPerBatch;
  auto messages = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location", acknowledged + 1);
  std::sort(messages.begin(), messages.end(), [](const auto& a, const auto& b) {
    return std::pair(a.partition, a.offset) < std::pair(b.partition, b.offset);
  });
  std::map<std::string, int> copies = testing::msg_id_copies(messages);
  std::size_t missing = 0, duplicated = 0, out_of_order = 0;
  for (const auto& device : devices) {
    const std::string id = "dev-" + std::to_string(device->index);
    for (int n = 0; n < device->acknowledged_batches * kPerBatch; ++n) {
      const int seen = copies[id + "-" + std::to_string(n)];
      if (seen == 0) ++missing;
      if (seen > 1) ++duplicated;
    }
    int last = -1;
    for (const auto& message : messages) {
      const auto decoded = envelope::decode_envelope(message.value, envelope::Format::protobuf);
      REQUIRE(decoded.has_value());
      const std::string& msg_id = decoded->record.msg_id;
      if (!msg_id.starts_with(id + "-")) continue;
      const int n = std::stoi(msg_id.substr(id.size() + 1));
      if (n <= last) ++out_of_order;
      last = std::max(last, n);
    }
  }
  CHECK(acknowledged > 0);
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(out_of_order == 0);
  MESSAGE("acknowledged " << acknowledged << ", found " << messages.size());
}

}  // namespace

TEST_CASE("a Kafka outage with the spool: acknowledged from the spool while it lasts, then replayed exactly once") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config(run, "spool-" + run, "", ", transaction_max_interval_ms: 50"));
  gateway.start();
  gateway.wait_ready();
  const GatewayProcess* target = &gateway;

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Device>> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.push_back(std::make_unique<Device>());
    devices.back()->index = d;
    devices.back()->run(&target, 100'000, stop);
  }
  const auto total = [&] {
    int sum = 0;
    for (const auto& device : devices) sum += device->acknowledged_batches;
    return sum;
  };
  REQUIRE(eventually([&] { return total() >= 30; }, std::chrono::seconds(30)));
  kafka("stop");
  const int before_outage = total();
  const auto down_since = std::chrono::steady_clock::now();
  bool stayed_ready = true;
  while (std::chrono::steady_clock::now() - down_since < std::chrono::seconds(20)) {
    if (testing::curl_get(gateway.url("/readyz")).status != 200) stayed_ready = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const double spooling_mode = metric(gateway, "telegate_spool_mode");
  const int during_outage = total() - before_outage;
  const double spooled = metric(gateway, "telegate_spool_pending_records");
  kafka("start");
  const bool caught_up = eventually(
      [&] {
        return metric(gateway, "telegate_spool_mode") == 0 && metric(gateway, "telegate_spool_pending_records") == 0;
      },
      std::chrono::seconds(60));
  if (caught_up) std::this_thread::sleep_for(std::chrono::seconds(2));  // some direct traffic after the hand-over
  stop = true;
  for (const auto& device : devices) device->thread.join();
  REQUIRE_MESSAGE(caught_up, gateway.log_tail());
  // The reconciliation counters tell acknowledgements from the spool apart from direct ones.
  const double tenant_spooled =
      metric(gateway, R"(telegate_tenant_records_total{outcome="spooled",protocol="http",tenant="acme"})");
  const double spool_took = metric(gateway, R"(telegate_spool_records_total{result="spooled"})");
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  CHECK(tenant_spooled > 0);
  CHECK(tenant_spooled == spool_took);
  CHECK(stayed_ready);
  CHECK(spooling_mode >= 1);
  CHECK(during_outage > 20);  // devices kept being acknowledged while the broker was down
  CHECK(spooled >= during_outage * kPerBatch - kDevices * kPerBatch);
  audit(run, devices);
  MESSAGE("batches acknowledged while the broker was down: " << during_outage << ", records pending then: " << spooled);
}

TEST_CASE("SIGKILL in the middle of the replay: the restarted gateway resumes from the committed position") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  // Small replay transactions make the replay last long enough to be interrupted.
  const std::string yaml = config(run, "spool-kill-" + run, ", fsync: never, replay_batch_bytes: 8192",
                                  ", transaction_min_interval_ms: 100, transaction_max_interval_ms: 100");
  auto gateway = std::make_unique<GatewayProcess>(dir.path(), yaml);
  gateway->start();
  gateway->wait_ready();
  const GatewayProcess* target = gateway.get();

  kafka("stop");
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Device>> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.push_back(std::make_unique<Device>());
    devices.back()->index = d;
    devices.back()->run(&target, 120, stop);
  }
  for (const auto& device : devices) device->thread.join();  // every batch acknowledged from the spool
  const double pending = metric(*gateway, "telegate_spool_pending_records");
  CHECK(pending == kDevices * 120 * kPerBatch);
  kafka("start");
  REQUIRE(eventually([&] { return metric(*gateway, "telegate_spool_mode") == 2; }, std::chrono::seconds(60)));
  REQUIRE(eventually([&] { return metric(*gateway, "telegate_spool_pending_records") < pending; },
                     std::chrono::seconds(30)));
  gateway->signal(SIGKILL);
  CHECK(gateway->wait() == 128 + SIGKILL);

  gateway = std::make_unique<GatewayProcess>(dir.path(), yaml);
  gateway->start();
  gateway->wait_ready(std::chrono::seconds(60));
  const double resumed_with = metric(*gateway, "telegate_spool_pending_records");
  REQUIRE(eventually([&] { return metric(*gateway, "telegate_spool_mode") == 0; }, std::chrono::seconds(60)));
  gateway->signal(SIGTERM);
  CHECK(gateway->wait() == 0);

  CHECK(resumed_with > 0);        // killed before the replay finished ...
  CHECK(resumed_with < pending);  // ... and after some of it was committed
  audit(run, devices);
  MESSAGE("spooled " << pending << " records; the restarted gateway resumed with " << resumed_with);
}
