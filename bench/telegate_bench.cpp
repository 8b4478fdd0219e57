// telegate-bench: benchmark programs (not tests). Every figure is printed next to a baseline
// measured in the same run, because the machine is shared and noisy; docs/benchmarks.md keeps
// the ratios, the commands and the machine.
//
//   telegate-bench pipeline [--records-per-request 50] [--seconds 3]
//       in-process cost per record of JSON decode → validate → envelope → serialize, next to
//       a simdjson On-Demand pass that only reads the same fields (the floor for any JSON codec)
//   telegate-bench codecs [--records 50]
//       decode ns per record of every codec next to the telegate JSON codec
//   telegate-bench kafka-baseline --bootstrap HOST:PORT --records N [--transaction-records 50000]
//       a plain transactional librdkafka producer sending pre-built envelopes with the Kafka
//       sink's settings: the baseline for HTTP → Kafka (bench/http_kafka.sh)
//   telegate-bench kafka-headers --bootstrap HOST:PORT [--records 500000]
//       the same producer with no header, the one tg-route header, and four separate headers
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/validate.hpp"
#include "telegate/envelope/envelope.hpp"

using namespace telegate;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A JSON array of `count` realistic location records (~190 bytes each).
std::string location_batch(std::size_t count, std::int64_t base_ms) {
  std::string body = "[";
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> jitter(-0.01, 0.01);
  for (std::size_t i = 0; i < count; ++i) {
    char record[320];
    const int length = std::snprintf(
        record, sizeof record,
        R"(%s{"device_id":"truck-0042","type":"location","ts":%lld,"msg_id":"truck-0042-%08zu","lat":%.7f,"lon":%.7f,"alt":295.5,"speed":13.42,"heading":87.5,"accuracy":4.5,"battery":81})",
        i ? "," : "", static_cast<long long>(base_ms + static_cast<std::int64_t>(i) * 100), i, 46.0569 + jitter(random),
        14.5058 + jitter(random));
    body.append(record, static_cast<std::size_t>(length));
  }
  body += "]";
  return body;
}

std::string flag(int argc, char** argv, std::string_view name, std::string fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

// The floor: read every field a location record has, with no validation or output.
double simdjson_floor_ns(const std::string& body, std::size_t records, double seconds) {
  simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(body);
  double checksum = 0;
  std::size_t iterations = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    simdjson::ondemand::document document = parser.iterate(padded);
    for (auto record : document.get_array()) {
      for (auto field : record.get_object()) {
        auto value = field.value();
        if (value.type() == simdjson::ondemand::json_type::number) {
          checksum += value.get_double().value();
        } else {
          checksum += static_cast<double>(value.get_string().value().size());
        }
      }
    }
    ++iterations;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  if (checksum == 0) std::puts("");  // keeps the loop from being optimised away
  return elapsed * 1e9 / static_cast<double>(iterations * records);
}

int pipeline(int argc, char** argv) {
  const std::size_t per_request = std::stoul(flag(argc, argv, "--records-per-request", "50"));
  const double seconds = std::stod(flag(argc, argv, "--seconds", "3"));
  const std::string body = location_batch(per_request, now_ms() - 60'000);

  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  const auto codec = registry.create("json", codecs::DecodeLimits{});
  const codecs::ValidationLimits limits;
  auto topic = envelope::TopicTemplate::compile("telemetry.{tenant}.{type}");
  envelope::EnvelopeBuilder builder(envelope::Format::protobuf, std::move(*topic));
  const codecs::DecodeContext decode_context{"acme", "truck-0042", "http", "application/json"};
  codecs::DecodedBatch batch;
  std::vector<envelope::SealedRecord> sealed(per_request);
  std::size_t value_bytes = 0;

  std::size_t iterations = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    batch.clear();
    if (!codec->decode(body, decode_context, batch)) throw std::runtime_error("benchmark body failed to decode");
    const envelope::EnvelopeContext context{"acme", "tracker", "bench-0", "application/json",
                                            envelope::SourceProtocol::http, now_ms()};
    std::size_t sealed_count = 0;
    for (const auto& record : batch.records()) {
      if (codecs::validate(record, limits, context.ingest_time_ms)) continue;
      builder.seal(record, context, sealed[sealed_count++]);
    }
    if (sealed_count != per_request) throw std::runtime_error("benchmark records failed validation");
    value_bytes = sealed[0].value.size();
    ++iterations;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  const double pipeline_ns = elapsed * 1e9 / static_cast<double>(iterations * per_request);
  const double floor_ns = simdjson_floor_ns(body, per_request, seconds);
  std::printf(
      "{\"benchmark\":\"pipeline\",\"records_per_request\":%zu,\"record_json_bytes\":%zu,\"envelope_bytes\":%zu,"
      "\"pipeline_ns_per_record\":%.1f,\"baseline_simdjson_read_ns_per_record\":%.1f,\"ratio\":%.2f}\n",
      per_request, body.size() / per_request, value_bytes, pipeline_ns, floor_ns, pipeline_ns / floor_ns);
  return 0;
}

// ns per decoded record for one codec over one body, repeated for `seconds`.
double decode_ns(const std::string& codec_name, const std::string& content_type, const std::string& body,
                 std::size_t expected_records, double seconds) {
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  const auto codec = registry.create(codec_name, codecs::DecodeLimits{});
  codecs::DecodedBatch batch;
  std::size_t iterations = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    batch.clear();
    if (!codec->decode(body, {"acme", "truck-0042", "http", content_type}, batch) ||
        batch.records().size() != expected_records) {
      throw std::runtime_error(codec_name + " benchmark body did not decode as expected");
    }
    ++iterations;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  return elapsed * 1e9 / static_cast<double>(iterations * expected_records);
}

// The valid samples of one codec (codecs/<name>/samples), as its apps send them: most phone
// apps send one record per request, so this is the cost a device really causes.
struct CodecSamples {
  std::unique_ptr<codecs::Codec> codec;
  std::vector<std::pair<std::string, std::string>> bodies;  // content type, body
};

CodecSamples load_samples(const codecs::CodecRegistry& registry, const std::string& name) {
  const std::filesystem::path folder = std::filesystem::path(TELEGATE_SOURCE_DIR) / "codecs" / name;
  const std::filesystem::path options_file = folder / "test-options.yaml";
  codecs::OptionReader options(std::filesystem::exists(options_file) ? YAML::LoadFile(options_file.string()) : YAML::Node(),
                               "codec_options");
  CodecSamples samples{registry.compile(name, options, codecs::DecodeLimits{})->instantiate(), {}};
  for (const auto& entry : std::filesystem::directory_iterator(folder / "samples")) {
    const std::string file = entry.path().filename().string();
    if (file.find(".valid.") == std::string::npos) continue;
    const std::string extension = entry.path().extension().string().substr(1);
    for (const std::string_view type : samples.codec->content_types()) {
      const std::string_view subtype = type.substr(type.find('/') + 1);
      if (subtype != extension && subtype != "x-" + extension) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      samples.bodies.emplace_back(std::string(type), std::string(std::istreambuf_iterator<char>(in), {}));
      break;
    }
  }
  return samples;
}

// ns per record decoding every valid sample in turn for `seconds`, and records per body.
std::pair<double, double> samples_ns(CodecSamples& samples, double seconds) {
  codecs::DecodedBatch batch;
  std::size_t records = 0, bodies = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    for (const auto& [content_type, body] : samples.bodies) {
      batch.clear();
      if (!samples.codec->decode(body, {"acme", "truck-0042", "http", content_type}, batch)) {
        throw std::runtime_error(std::string(samples.codec->name()) + " sample did not decode");
      }
      records += batch.records().size();
      ++bodies;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  return {elapsed * 1e9 / static_cast<double>(records), static_cast<double>(records) / static_cast<double>(bodies)};
}

// Every registered codec over its own valid samples, next to the JSON codec over its own in
// the same run (JSON measured first and last, to show drift on a shared machine).
int codec_sample_costs(double seconds) {
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  CodecSamples json = load_samples(registry, "json");
  const double json_before = samples_ns(json, seconds).first;
  std::vector<std::tuple<std::string, double, double>> results;
  for (const std::string& name : registry.names()) {
    if (name == "json") continue;
    CodecSamples samples = load_samples(registry, name);
    const auto [ns, per_body] = samples_ns(samples, seconds);
    results.emplace_back(name, ns, per_body);
  }
  const double json_after = samples_ns(json, seconds).first;
  const double baseline = (json_before + json_after) / 2;
  for (const auto& [name, ns, per_body] : results) {
    std::printf("{\"benchmark\":\"codec_samples\",\"codec\":\"%s\",\"records_per_body\":%.1f,\"ns_per_record\":%.1f,"
                "\"baseline_json_samples_ns_per_record\":%.1f,\"ratio\":%.2f}\n",
                name.c_str(), per_body, ns, baseline, ns / baseline);
  }
  std::printf("{\"benchmark\":\"codec_samples\",\"codec\":\"json\",\"ns_per_record_first\":%.1f,\"ns_per_record_last\":%.1f}\n",
              json_before, json_after);
  return 0;
}

// Each codec's decode cost per record next to the telegate JSON codec's, same run, same
// number of records (SenML: one reading per record, distinct times so none are grouped).
int codec_costs(int argc, char** argv) {
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "50"));
  const double seconds = std::stod(flag(argc, argv, "--seconds", "2"));
  const std::int64_t base_ms = now_ms() - 60'000;
  std::string senml = "[{\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"bu\":\"Cel\",\"bt\":" +
                      std::to_string(base_ms / 1000) + "}";
  for (std::size_t i = 0; i < records; ++i) {
    senml += ",{\"n\":\"temperature\",\"t\":" + std::to_string(i) + ",\"v\":" + std::to_string(20.0 + 0.1 * static_cast<double>(i)) + "}";
  }
  senml += "]";
  const double json = decode_ns("json", "application/json", location_batch(records, base_ms), records, seconds);
  const double senml_ns = decode_ns("senml", "application/senml+json", senml, records, seconds);
  std::printf("{\"benchmark\":\"codecs\",\"records\":%zu,\"json_ns_per_record\":%.1f,"
              "\"senml_ns_per_record\":%.1f,\"senml_to_json\":%.2f}\n",
              records, json, senml_ns, senml_ns / json);
  return codec_sample_costs(seconds);
}

void must(rd_kafka_error_t* error, const char* what) {
  if (!error) return;
  std::string message = std::string(what) + ": " + rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  throw std::runtime_error(message);
}

enum class HeaderMode { none, compact, separate };

// Pre-built envelopes, sealed before any clock starts.
std::vector<envelope::SealedRecord> prebuilt_envelopes() {
  const std::string body = location_batch(1000, now_ms() - 60'000);
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  const auto codec = registry.create("json", codecs::DecodeLimits{});
  codecs::DecodedBatch batch;
  if (!codec->decode(body, codecs::DecodeContext{"acme", "truck-0042", "http", "application/json"}, batch)) {
    throw std::runtime_error("baseline body failed to decode");
  }
  envelope::EnvelopeBuilder builder(envelope::Format::protobuf, *envelope::TopicTemplate::compile("x"));
  std::vector<envelope::SealedRecord> sealed(batch.records().size());
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    builder.seal(batch.records()[i],
                 envelope::EnvelopeContext{"acme", "tracker", "bench-0", "application/json",
                                           envelope::SourceProtocol::http, now_ms()},
                 sealed[i]);
    sealed[i].key = "sim-" + std::to_string(i % 64);
  }
  return sealed;
}

// One transactional producer with the Kafka sink's settings; returns records/s.
double produce_run(const std::string& bootstrap, const std::string& topic, const std::vector<envelope::SealedRecord>& sealed,
                   std::size_t records, std::size_t per_transaction, HeaderMode headers) {
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", bootstrap},  {"enable.idempotence", "true"},
      {"acks", "all"},                   {"transactional.id", "bench-" + topic},
      {"compression.type", "lz4"},       {"linger.ms", "10"},
      {"batch.size", "1000000"},         {"queue.buffering.max.messages", "2000000"},
      {"queue.buffering.max.kbytes", "2097152"}};
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error(error_text);
    }
  }
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error_text, sizeof error_text);
  if (!producer) throw std::runtime_error(error_text);
  must(rd_kafka_init_transactions(producer, 30'000), "init_transactions");

  // The routing fields as four separate headers, for comparison with the one compact header.
  const auto route = envelope::decode_route_header(sealed[0].route_header);
  const std::string event_time = std::to_string(route->event_time_ms);
  const auto started = Clock::now();
  std::size_t in_transaction = 0;
  must(rd_kafka_begin_transaction(producer), "begin_transaction");
  for (std::size_t i = 0; i < records; ++i) {
    const envelope::SealedRecord& record = sealed[i % sealed.size()];
    rd_kafka_headers_t* list = nullptr;
    if (headers == HeaderMode::compact) {
      list = rd_kafka_headers_new(1);
      rd_kafka_header_add(list, envelope::kRouteHeader.data(), -1, record.route_header.data(),
                          static_cast<ssize_t>(record.route_header.size()));
    } else if (headers == HeaderMode::separate) {
      list = rd_kafka_headers_new(4);
      rd_kafka_header_add(list, "tenant", -1, route->tenant.data(), static_cast<ssize_t>(route->tenant.size()));
      rd_kafka_header_add(list, "device_type", -1, route->device_type.data(), static_cast<ssize_t>(route->device_type.size()));
      rd_kafka_header_add(list, "event_time", -1, event_time.data(), static_cast<ssize_t>(event_time.size()));
      rd_kafka_header_add(list, "msg_id", -1, record.msg_id.data(), static_cast<ssize_t>(record.msg_id.size()));
    }
    rd_kafka_resp_err_t error;
// librdkafka's RD_KAFKA_V_* macros are C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    while ((error = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                                      RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
                                      RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
                                      RD_KAFKA_V_HEADERS(list), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(producer, 1);
    }
#pragma GCC diagnostic pop
    if (error) throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(error));
    rd_kafka_poll(producer, 0);
    if (++in_transaction == per_transaction) {
      must(rd_kafka_commit_transaction(producer, 60'000), "commit_transaction");
      must(rd_kafka_begin_transaction(producer), "begin_transaction");
      in_transaction = 0;
    }
  }
  must(rd_kafka_commit_transaction(producer, 60'000), "commit_transaction");
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  rd_kafka_destroy(producer);
  return static_cast<double>(records) / elapsed;
}

int kafka_baseline(int argc, char** argv) {
  const std::string bootstrap = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "1000000"));
  const std::size_t per_transaction = std::stoul(flag(argc, argv, "--transaction-records", "50000"));
  const auto sealed = prebuilt_envelopes();
  const double rate = produce_run(bootstrap, "bench.baseline." + std::to_string(now_ms()), sealed, records,
                                  per_transaction, HeaderMode::compact);
  std::printf("{\"benchmark\":\"kafka-baseline\",\"records\":%zu,\"transaction_records\":%zu,"
              "\"records_per_second\":%.0f,\"envelope_bytes\":%zu}\n",
              records, per_transaction, rate, sealed[0].value.size());
  return 0;
}

// What Kafka headers cost: the same envelopes with no header, the one compact tg-route header,
// and the routing fields as four separate headers; each rate relative to no header.
int kafka_headers(int argc, char** argv) {
  const std::string bootstrap = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "500000"));
  const std::size_t per_transaction = std::stoul(flag(argc, argv, "--transaction-records", "50000"));
  const auto sealed = prebuilt_envelopes();
  const std::string run = std::to_string(now_ms());
  const double none = produce_run(bootstrap, "bench.h0." + run, sealed, records, per_transaction, HeaderMode::none);
  const double compact = produce_run(bootstrap, "bench.h1." + run, sealed, records, per_transaction, HeaderMode::compact);
  const double separate = produce_run(bootstrap, "bench.h4." + run, sealed, records, per_transaction, HeaderMode::separate);
  std::printf("{\"benchmark\":\"kafka-headers\",\"records\":%zu,\"no_header_per_second\":%.0f,"
              "\"one_compact_header_per_second\":%.0f,\"four_headers_per_second\":%.0f,"
              "\"compact_ratio\":%.2f,\"four_ratio\":%.2f}\n",
              records, none, compact, separate, compact / none, separate / none);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "pipeline") return pipeline(argc, argv);
    if (mode == "codecs") return codec_costs(argc, argv);
    if (mode == "kafka-baseline") return kafka_baseline(argc, argv);
    if (mode == "kafka-headers") return kafka_headers(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate-bench %s: %s\n", mode.c_str(), error.what());
    return 1;
  }
  std::fprintf(stderr, "usage: telegate-bench pipeline|codecs|kafka-baseline|kafka-headers [options] (see bench/telegate_bench.cpp)\n");
  return 2;
}
