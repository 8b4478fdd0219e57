#include <doctest/doctest.h>

#include <string>

#include "telegate/gateway/config.hpp"

using telegate::gateway::ConfigError;
using telegate::gateway::parse_config;

namespace {

// The key a config error names, or "" when the text parses.
std::string error_key(const std::string& yaml, std::vector<std::pair<std::string, std::string>> overrides = {}) {
  try {
    parse_config(yaml, overrides);
  } catch (const ConfigError& error) {
    return error.key();
  }
  return "";
}

const std::string kMinimal = R"(
device_types:
  - name: tracker
tenants:
  - name: acme
    devices:
      - id: truck-1
        device_type: tracker
        token_sha256: 7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c
)";

}  // namespace

TEST_CASE("the embedded default runs the local log with one demo device") {
  const auto config = parse_config("");
  CHECK(config.sink.kind == telegate::gateway::SinkKind::local_log);
  REQUIRE(config.tenants.size() == 1);
  CHECK(config.tenants[0].name == "demo");
  REQUIRE(config.tenants[0].devices.size() == 1);
  CHECK(config.tenants[0].devices[0].device_type == "tracker");
  CHECK(config.sink.kafka.transactional_id_prefix == "telegate-telegate-0");
}

TEST_CASE("values are read and converted") {
  const auto config = parse_config(kMinimal + R"(
instance_id: gw-7
http: {port: 9090, threads: 2, max_body_bytes: 65536, idle_timeout_s: 5}
admission: {max_inflight_records: 1000, retry_after_s: 3}
dedup: {max_entries: 5000, window_s: 120, journal_partitions: 6, across_replicas: true}
validation: {max_future_skew_s: 60, max_speed_mps: 120.5}
sink:
  type: kafka
  topic_template: "t.{tenant}.{device_type}.{type}"
  kafka:
    bootstrap_servers: 127.0.0.1:9092
    producers: 3
    transaction_max_interval_ms: 250
    librdkafka: {linger.ms: "20", compression.type: zstd}
)");
  CHECK(config.instance_id == "gw-7");
  CHECK(config.http.port == 9090);
  CHECK(config.http.threads == 2);
  CHECK(config.http.max_body_bytes == 65536);
  CHECK(config.http.idle_timeout == std::chrono::seconds(5));
  CHECK(config.admission.max_inflight_records == 1000);
  CHECK(config.admission.retry_after == std::chrono::seconds(3));
  CHECK(config.dedup.max_entries == 5000);
  CHECK(config.dedup.window == std::chrono::seconds(120));
  CHECK(config.dedup.journal_partitions == 6);
  CHECK(config.dedup.across_replicas);
  CHECK(config.validation.max_future_skew == std::chrono::seconds(60));
  CHECK(config.validation.max_speed_mps == doctest::Approx(120.5));
  CHECK(config.sink.kind == telegate::gateway::SinkKind::kafka);
  CHECK(config.sink.kafka.producers == 3);
  CHECK(config.sink.kafka.transaction_max_interval == std::chrono::milliseconds(250));
  CHECK(config.sink.kafka.transaction_min_interval == std::chrono::milliseconds(10));  // the default
  CHECK(config.sink.kafka.librdkafka.at("linger.ms") == "20");
  CHECK(config.sink.kafka.librdkafka.at("compression.type") == "zstd");
  CHECK(config.sink.kafka.transactional_id_prefix == "telegate-gw-7");
  CHECK(config.tenants.at(0).devices.at(0).id == "truck-1");
}

TEST_CASE("errors name the key at fault") {
  CHECK(error_key(kMinimal + "htp: {port: 1}\n") == "htp");
  CHECK(error_key(kMinimal + "http: {prot: 1}\n") == "http.prot");
  CHECK(error_key(kMinimal + "http: {port: 70000}\n") == "http.port");
  CHECK(error_key(kMinimal + "http: {port: eighty}\n") == "http.port");
  CHECK(error_key(kMinimal + "http: {threads: 0}\n") == "http.threads");
  CHECK(error_key(kMinimal + "http: 5\n") == "http");
  CHECK(error_key(kMinimal + "sink: {type: s3}\n") == "sink.type");
  CHECK(error_key(kMinimal + "sink: {type: kafka}\n") == "sink.kafka.bootstrap_servers");
  CHECK(error_key(kMinimal + "sink: {topic_template: 't.{nope}'}\n") == "sink.topic_template");
  CHECK(error_key(kMinimal + "sink: {local_log: {fsync: sometimes}}\n") == "sink.local_log.fsync");
  CHECK(error_key(kMinimal + "sink: {kafka: {producers: 9}}\n") == "sink.kafka.producers");
  CHECK(error_key(kMinimal + "sink: {kafka: {transaction_min_interval_ms: 0}}\n") ==
        "sink.kafka.transaction_min_interval_ms");
  CHECK(error_key(kMinimal + "sink: {kafka: {transaction_min_interval_ms: 50, transaction_max_interval_ms: 40}}\n") ==
        "sink.kafka.transaction_min_interval_ms");
  CHECK(error_key(kMinimal + "sink: {kafka: {spool: {fsync: sometimes}}}\n") == "sink.kafka.spool.fsync");
  CHECK(error_key(kMinimal + "sink: {kafka: {spool: {max_bytes: 10}}}\n") == "sink.kafka.spool.max_bytes");
  CHECK(error_key(kMinimal + "sink: {kafka: {spool: {directory: ''}}}\n") == "sink.kafka.spool.directory");
  CHECK(error_key(kMinimal + "sink: {kafka: {spool: {position_topic: 'a b'}}}\n") == "sink.kafka.spool.position_topic");
  CHECK(error_key(kMinimal + "sink: {kafka: {spool: {sizee: 1}}}\n") == "sink.kafka.spool.sizee");
  CHECK(error_key(kMinimal + "instance_id: 'has space'\n") == "instance_id");
  CHECK(error_key(kMinimal + "log_level: loud\n") == "log_level");
  CHECK(error_key(kMinimal + "dedup: {across_replicas: sometimes}\n") == "dedup.across_replicas");
  CHECK(error_key(kMinimal + "dedup: {window_s: 0}\n") == "dedup.window_s");
  CHECK(error_key("device_types: [{name: t, codec: morse}]\n") == "device_types[0].codec");
  CHECK(error_key("device_types: [{name: t}, {name: t}]\n") == "device_types[1].name");
  CHECK(error_key("device_types: [{name: t, envelope_format: xml}]\n") == "device_types[0].envelope_format");
  CHECK(error_key("device_types: [{name: t, codec: osmand, codec_options: {speed_unit: x}}]\n") ==
        "device_types[0].codec_options.speed_unit");
  CHECK(error_key("device_types: [{name: t, http: {path: /admin/x}}]\n") == "device_types[0].http.path");
  CHECK(error_key("device_types: [{name: t, http: {path: /p, auth: magic}}]\n") == "device_types[0].http.auth");
  CHECK(error_key("device_types: [{name: t, message_types: [gps]}]\n") == "device_types[0].message_types[0]");
  CHECK(error_key("device_types: [{name: t, samples: [{content_type: application/json}]}]\n") ==
        "device_types[0].samples[0].body");
  CHECK(error_key("catalog: {store: redis}\n") == "catalog.store");
  CHECK(error_key("device_types: [{name: a, http: {path: /p}}, {name: b, http: {path: /p}}]\n") ==
        "device_types[1].http.path");
  CHECK(error_key("admin: {token_sha256: nothex}\n") == "admin.token_sha256");
  CHECK(error_key("device_types: [{name: t}]\ntenants: [{name: a, devices: [{id: d, device_type: u, token_sha256: "
                  "7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c}]}]\n") ==
        "tenants[0].devices[0].device_type");
  CHECK(error_key("device_types: [{name: t}]\ntenants: [{name: a, devices: [{id: d, device_type: t, token_sha256: "
                  "abc}]}]\n") == "tenants[0].devices[0].token_sha256");
  CHECK(error_key("tenants: [{name: 'a/b'}]\n") == "tenants[0].name");
  CHECK(error_key("tenants: [{name: a}, {name: a}]\n") == "tenants[1].name");
  CHECK(error_key("http: [1, 2\n") == "(file)");
}

TEST_CASE("a commit interval below the default minimum lowers the minimum with it") {
  const auto config = parse_config(kMinimal + "sink: {kafka: {transaction_max_interval_ms: 4}}\n");
  CHECK(config.sink.kafka.transaction_max_interval == std::chrono::milliseconds(4));
  CHECK(config.sink.kafka.transaction_min_interval == std::chrono::milliseconds(4));
  const auto both = parse_config(kMinimal + "sink: {kafka: {transaction_min_interval_ms: 30}}\n");
  CHECK(both.sink.kafka.transaction_min_interval == std::chrono::milliseconds(30));
}

TEST_CASE("the Kafka spool is off unless configured, and its keys are read") {
  CHECK_FALSE(parse_config(kMinimal).sink.spool.has_value());
  const auto config = parse_config(kMinimal +
                                   "sink: {kafka: {spool: {directory: /var/spool/tg, fsync: interval, fsync_interval_ms: 50, "
                                   "max_bytes: 2097152, segment_bytes: 1048576, replay_batch_bytes: 4096}}}\n");
  REQUIRE(config.sink.spool.has_value());
  CHECK(config.sink.spool->directory == "/var/spool/tg");
  CHECK(config.sink.spool->fsync == telegate::sinks::FsyncPolicy::interval);
  CHECK(config.sink.spool->fsync_interval == std::chrono::milliseconds(50));
  CHECK(config.sink.spool->max_bytes == 2097152);
  CHECK(config.sink.spool->segment_bytes == 1048576);
  CHECK(config.sink.spool->replay_batch_bytes == 4096);
  CHECK(config.sink.spool->position_topic == "_telegate_spool");
}

TEST_CASE("the Kafka record limit defaults to the producer's message.max.bytes and may not exceed it") {
  CHECK(parse_config(kMinimal).sink.max_record_bytes == 1'000'000);
  CHECK(parse_config(kMinimal + "sink: {kafka: {librdkafka: {message.max.bytes: '200000'}}}\n").sink.max_record_bytes ==
        200'000);
  CHECK(parse_config(kMinimal + "sink: {kafka: {max_record_bytes: 65536}}\n").sink.max_record_bytes == 65'536);
  CHECK(error_key(kMinimal + "sink: {kafka: {max_record_bytes: 2000000}}\n") == "sink.kafka.max_record_bytes");
  CHECK(error_key(kMinimal + "sink: {kafka: {max_record_bytes: 300000, librdkafka: {message.max.bytes: '200000'}}}\n") ==
        "sink.kafka.max_record_bytes");
  CHECK(error_key(kMinimal + "sink: {kafka: {librdkafka: {message.max.bytes: 1MB}}}\n") ==
        "sink.kafka.librdkafka.message.max.bytes");
}

TEST_CASE("two devices may not share a token") {
  const std::string device =
      "{id: DEV, device_type: t, token_sha256: 7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c}";
  std::string yaml = "device_types: [{name: t}]\ntenants: [{name: a, devices: [" + device + ", " + device + "]}]\n";
  yaml.replace(yaml.find("DEV"), 3, "d1");
  yaml.replace(yaml.find("DEV"), 3, "d2");
  CHECK(error_key(yaml) == "tenants[0].devices[1].token_sha256");
}

TEST_CASE("command-line overrides apply before validation") {
  const auto config = parse_config(kMinimal, {{"http.port", "8181"},
                                              {"sink.type", "kafka"},
                                              {"sink.kafka.bootstrap_servers", "127.0.0.1:19092"},
                                              {"sink.kafka.librdkafka.linger.ms", "50"}});
  CHECK(config.http.port == 8181);
  CHECK(config.sink.kind == telegate::gateway::SinkKind::kafka);
  CHECK(config.sink.kafka.librdkafka.at("linger.ms") == "50");
  CHECK(error_key(kMinimal, {{"http.port", "-1"}}) == "http.port");
  CHECK(error_key(kMinimal, {{"http.nonsense", "1"}}) == "http.nonsense");
  CHECK(error_key(kMinimal, {{"http..port", "1"}}) == "http..port");
}

TEST_CASE("the documented example config is valid") {
  const auto config = telegate::gateway::load_config(TELEGATE_SOURCE_DIR "/config/telegate.example.yaml");
  CHECK(config.sink.kind == telegate::gateway::SinkKind::kafka);
  CHECK(config.sink.kafka.transactional_id_prefix == "telegate-telegate-0");
  CHECK(config.device_types.at(0).envelope_format == telegate::envelope::Format::protobuf);
  CHECK_THROWS_AS(telegate::gateway::load_config(TELEGATE_SOURCE_DIR "/config/no-such-file.yaml"), ConfigError);
}

TEST_CASE("quotas: weights and rate quotas per layer, errors name the key") {
  const auto config = parse_config(kMinimal + R"(
admission: {device_max_inflight_records: 500}
quotas:
  tenants:
    acme: {weight: 3, records_per_second: 1000, burst: 5000}
  device_types:
    tracker: {records_per_second: 200}
  device: {records_per_second: 10, burst: 20}
)");
  CHECK(config.admission.device_max_inflight_records == 500);
  CHECK(config.quotas.tenant("acme").weight == 3);
  CHECK(config.quotas.tenant("acme").rate.records_per_second == 1000);
  CHECK(config.quotas.tenant("acme").rate.burst == 5000);
  CHECK(config.quotas.tenant("other").weight == 1);  // unlisted: weight 1, no rate quota
  CHECK_FALSE(config.quotas.tenant("other").rate.limited());
  CHECK(config.quotas.device_type("tracker").rate.burst == 200);  // burst defaults to one second's worth
  CHECK(config.quotas.device.records_per_second == 10);
  CHECK(config.quotas.device.burst == 20);
  CHECK_FALSE(parse_config(kMinimal).quotas.device.limited());  // no quota by default

  CHECK(error_key(kMinimal + "quotas: {tenants: {acme: {weight: 0}}}\n") == "quotas.tenants.acme.weight");
  CHECK(error_key(kMinimal + "quotas: {tenants: {acme: {rate: 5}}}\n") == "quotas.tenants.acme.rate");
  CHECK(error_key(kMinimal + "quotas: {device_types: {tracker: {records_per_second: -1}}}\n") ==
        "quotas.device_types.tracker.records_per_second");
  CHECK(error_key(kMinimal + "quotas: {device: {records_per_second: 5, burst: 0.5}}\n") == "quotas.device.burst");
  CHECK(error_key(kMinimal + "quotas: {devices: {}}\n") == "quotas.devices");
  CHECK(error_key(kMinimal + "quotas: {tenants: [acme]}\n") == "quotas.tenants");
  CHECK(error_key(kMinimal + "admission: {device_max_inflight_records: 0}\n") == "admission.device_max_inflight_records");
}
