// telegate-bench: benchmark programs (not tests). Every figure is printed next to a baseline
// measured in the same run, because the machine is shared and noisy; docs/benchmarks.md keeps
// the ratios, the commands and the machine.
//
//   telegate-bench pipeline [--records-per-request 50] [--seconds 3]
//       in-process cost per record of JSON decode → validate → envelope → serialize, next to
//       a simdjson On-Demand pass that only reads the same fields (the floor for any JSON codec)
//   telegate-bench envelope [--records-per-request 250] [--seconds 3]
//       CPU ns per record to seal (topic, key, tg-route header, Protobuf envelope) the pipeline
//       benchmark's location records, and sensor records of four readings, next to copying
//       the finished strings into the same records (the floor: the bytes a sealed record holds)
//   telegate-bench validate [--records-per-request 250] [--seconds 3]
//       CPU ns per record of validate over the envelope benchmark's location and sensor
//       records, next to a loop that only reads the fields validate reads
//   telegate-bench ingest [--records-per-request 1] [--seconds 3]
//       CPU ns per request of the whole ingest pipeline (PipelineWorker::ingest: stages,
//       de-duplication, admission, metrics, the sink hand-off and the completion) into a sink
//       that completes each batch as it is submitted, next to the device type's stages alone
//       (decode → validate → envelope) on the same bodies: the difference is what a request
//       costs beyond its records. 100 devices of one tenant in turn, location records without
//       msg_ids (as telegate-mqtt-bench publishes them); 1 record per request is MQTT's shape
//   telegate-bench admission [--requests 2000000]
//       per-request cost of admission with layered shares, the device cap, per-tenant counters
//       and (optionally) rate quotas at every layer, next to the global budget alone (the path
//       before quotas): 1000 devices in 10 tenants, 50 records per request, one thread
//   telegate-bench codecs [--records 50]
//       decode CPU ns per record (the decoding thread's) of every codec next to the telegate JSON codec
//   telegate-bench gt06-decode [--seconds 2]
//       GT06 packets per core: the gt06 codec alone, and framing + CRC-ITU + codec over a stream
//       of 0x12 packets, next to the JSON codec on the same fix as a one-record body
//   telegate-bench kafka-baseline --bootstrap HOST:PORT --records N [--transaction-records 50000]
//                                 [--key-run 250] [--partitions 0]
//       a plain transactional librdkafka producer sending pre-built envelopes with the Kafka
//       sink's settings, keyed by device in runs of --key-run records (a request's records):
//       the baseline for HTTP → Kafka (bench/http_kafka.sh); its topic has --partitions
//       partitions (0: the broker's num.partitions)
//   telegate-bench kafka-topic --bootstrap HOST:PORT --topic T --partitions N
//       creates topic T with N partitions (bench/gateway_lib.sh, TELEGATE_BENCH_PARTITIONS)
//   telegate-bench kafka-headers --bootstrap HOST:PORT [--records 500000]
//       the same producer with no header, the one tg-route header, and four separate headers
//   telegate-bench kafka-floor --bootstrap HOST:PORT [--records 500000] [--only TEXT]
//       the librdkafka floor: the same producer's CPU per record (its own thread and
//       librdkafka's) with one setting changed at a time against the Kafka sink's defaults
//   telegate-bench spool --bootstrap HOST:PORT [--records 200000] [--batch 100] [--fsync always]
//       the Kafka spool: records/s appended to the spool (Kafka held "not ready") and replayed
//       from it into Kafka, next to the plain Kafka sink and the spooling sink in direct mode,
//       all with the same envelopes in the same run
//   telegate-bench coap --port P [--host 127.0.0.1] [--devices 64] [--batch 4] [--records 200000]
//       closed-loop CoAP load (bench/coap_kafka.sh): each simulated device (one UDP socket,
//       token sim-token-<i> as telegate-sim provision makes them) POSTs a CON request of `batch`
//       records with ?t=<token>, waits for its 2.04 (piggybacked, or empty ACK + separate
//       response, which it ACKs), then sends the next. Prints records/s and latency percentiles
//       from send to the 2.04, in telegate-sim's JSON shape.
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <malloc.h>
#include <unistd.h>
#include <fmt/format.h>
#include <prometheus/registry.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/validate.hpp"
#include "gt06/gt06_codec.hpp"
#include "tracker/gt06/gt06_protocol.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/dedup.hpp"
#include "telegate/sinks/kafka_admin.hpp"
#include "telegate/sinks/kafka_sink.hpp"
#include "telegate/sinks/spool.hpp"
#include "telegate/gateway/catalog.hpp"
#include "telegate/gateway/metrics.hpp"
#include "telegate/gateway/pipeline.hpp"
#include "telegate/gateway/quotas.hpp"

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

double cpu_seconds(int who);

// CPU ns per record of `seal` over `records` as one request after another, for `seconds` of
// this thread's CPU (on the shared box the wall clock counts other people's work); the floor
// instead assigns the first pass's finished strings (all a sealed record holds).
double seal_ns(const std::vector<codecs::CanonicalRecord>& records, double seconds, bool floor) {
  envelope::EnvelopeBuilder builder(envelope::Format::protobuf, *envelope::TopicTemplate::compile("telemetry.{tenant}.{type}"));
  std::vector<envelope::SealedRecord> sealed(records.size()), finished(records.size());
  const envelope::EnvelopeContext first{"acme", "tracker", "bench-0", "application/json", envelope::SourceProtocol::http, now_ms()};
  for (std::size_t i = 0; i < records.size(); ++i) builder.seal(records[i], first, finished[i]);
  std::size_t iterations = 0;
  std::size_t checksum = 0;
  const double started = cpu_seconds(RUSAGE_THREAD);
  while (cpu_seconds(RUSAGE_THREAD) - started < seconds) {
    const envelope::EnvelopeContext context{"acme", "tracker", "bench-0", "application/json",
                                            envelope::SourceProtocol::http, now_ms()};
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (floor) {
        sealed[i].msg_id = finished[i].msg_id;
        sealed[i].topic = finished[i].topic;
        sealed[i].key = finished[i].key;
        sealed[i].route_header = finished[i].route_header;
        sealed[i].value = finished[i].value;
      } else {
        builder.seal(records[i], context, sealed[i]);
      }
    }
    checksum += sealed.back().value.size();
    ++iterations;
  }
  const double elapsed = cpu_seconds(RUSAGE_THREAD) - started;
  if (checksum == 0) std::puts("");  // keeps the loop from being optimised away
  return elapsed * 1e9 / static_cast<double>(iterations * records.size());
}

// The pipeline benchmark's body decoded by the JSON codec: `count` location records as the
// stages after the codec see them.
std::vector<codecs::CanonicalRecord> location_records(std::size_t count) {
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  const auto codec = registry.create("json", codecs::DecodeLimits{});
  codecs::DecodedBatch batch;
  if (!codec->decode(location_batch(count, now_ms() - 60'000), {"acme", "truck-0042", "http", "application/json"}, batch)) {
    throw std::runtime_error("benchmark body failed to decode");
  }
  return {batch.records().begin(), batch.records().end()};
}

// `count` sensor records of four readings with units, a minute old.
std::vector<codecs::CanonicalRecord> sensor_records(std::size_t count) {
  std::vector<codecs::CanonicalRecord> sensors(count);
  for (std::size_t i = 0; i < count; ++i) {
    codecs::CanonicalRecord& record = sensors[i];
    record.device_id = "probe-0042";
    record.type = codecs::MessageType::sensor;
    record.event_time_ms = now_ms() - 60'000 + static_cast<std::int64_t>(i) * 100;
    record.msg_id = "probe-0042-" + std::to_string(i);
    record.readings = {{"temp", 21.5, "Cel"}, {"rh", 40.25, "%RH"}, {"co2", 612, "ppm"}, {"battery", 81, "%EL"}};
  }
  return sensors;
}

// Runs `cost` (CPU ns per record, with and without its floor) over a request of location
// records and one of sensor records; prints them as benchmark `name`'s JSON object, the
// `stage` next to its `floor`.
int location_and_sensor_costs(int argc, char** argv, const char* name, const char* stage, const char* floor,
                              double (*cost)(const std::vector<codecs::CanonicalRecord>&, double, bool)) {
  const std::size_t per_request = std::stoul(flag(argc, argv, "--records-per-request", "250"));
  const double seconds = std::stod(flag(argc, argv, "--seconds", "3"));
  const std::vector<codecs::CanonicalRecord> locations = location_records(per_request);
  const std::vector<codecs::CanonicalRecord> sensors = sensor_records(per_request);
  const double location_ns = cost(locations, seconds, false);
  const double location_floor = cost(locations, seconds, true);
  const double sensor_ns = cost(sensors, seconds, false);
  const double sensor_floor = cost(sensors, seconds, true);
  std::printf("{\"benchmark\":\"%s\",\"records_per_request\":%zu,\"location_%s_ns_per_record\":%.1f,"
              "\"baseline_location_%s_ns\":%.1f,\"ratio_location\":%.2f,\"sensor_%s_ns_per_record\":%.1f,"
              "\"baseline_sensor_%s_ns\":%.1f,\"ratio_sensor\":%.2f}\n",
              name, per_request, stage, location_ns, floor, location_floor, location_ns / location_floor, stage,
              sensor_ns, floor, sensor_floor, sensor_ns / sensor_floor);
  return 0;
}

// CPU ns per record of `validate` over `records` for `seconds` of this thread's CPU; the floor
// instead only reads what validate reads (ids' sizes, the time, every number), so the
// difference is the checking itself.
double validate_ns(const std::vector<codecs::CanonicalRecord>& records, double seconds, bool floor) {
  const codecs::ValidationLimits limits;
  std::size_t iterations = 0;
  double checksum = 0;
  const double started = cpu_seconds(RUSAGE_THREAD);
  // The clock is read every 64 passes: getrusage costs about as much as a pass's validation.
  while (iterations % 64 != 0 || cpu_seconds(RUSAGE_THREAD) - started < seconds) {
    const std::int64_t now = now_ms();
    for (const codecs::CanonicalRecord& record : records) {
      if (!floor) {
        if (codecs::validate(record, limits, now)) throw std::runtime_error("benchmark record failed validation");
        continue;
      }
      const codecs::Location& at = record.location;
      checksum += static_cast<double>(record.device_id.size() + record.msg_id.size()) +
                  static_cast<double>(record.event_time_ms) +
                  at.lat + at.lon + at.alt.value_or(0) + at.speed.value_or(0) + at.heading.value_or(0) +
                  at.accuracy.value_or(0) + at.battery.value_or(0);
      for (const codecs::SensorReading& reading : record.readings) checksum += reading.value + static_cast<double>(reading.name.size());
    }
    ++iterations;
  }
  const double elapsed = cpu_seconds(RUSAGE_THREAD) - started;
  if (floor && checksum == 0) std::puts("");  // keeps the loop from being optimised away
  return elapsed * 1e9 / static_cast<double>(iterations * records.size());
}

// CPU ns per decoded record for one codec over one body, repeated for `seconds`: this thread's
// CPU time, so that other processes on the shared box (not the decoder) do not count.
double decode_ns(const std::string& codec_name, const std::string& content_type, const std::string& body,
                 std::size_t expected_records, double seconds) {
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  const auto codec = registry.create(codec_name, codecs::DecodeLimits{});
  codecs::DecodedBatch batch;
  std::size_t iterations = 0;
  const auto started = Clock::now();
  const double cpu_started = cpu_seconds(RUSAGE_THREAD);
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    batch.clear();
    if (!codec->decode(body, {"acme", "truck-0042", "http", content_type}, batch) ||
        batch.records().size() != expected_records) {
      throw std::runtime_error(codec_name + " benchmark body did not decode as expected");
    }
    ++iterations;
  }
  return (cpu_seconds(RUSAGE_THREAD) - cpu_started) * 1e9 / static_cast<double>(iterations * expected_records);
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

// User + system CPU seconds of `who`: RUSAGE_SELF (this process, every thread included) or
// RUSAGE_THREAD (the calling thread alone).
double cpu_seconds(int who) {
  rusage usage{};
  getrusage(who, &usage);
  const auto seconds = [](const timeval& time) { return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A Codec 8 AVL data body of `records` records as an FMB920 sends them while driving: a GPS
// fix and 11 I/O elements (ignition, movement, GSM signal, speed, voltages, odometer…).
std::string teltonika_body(std::size_t records, std::int64_t base_ms) {
  std::string body{'\x08', static_cast<char>(records)};
  const auto put = [&body](std::uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) body += static_cast<char>((value >> (8 * i)) & 0xFF);
  };
  for (std::size_t i = 0; i < records; ++i) {
    put(static_cast<std::uint64_t>(base_ms + static_cast<std::int64_t>(i) * 1000), 8);
    put(0, 1);                                             // priority
    put(static_cast<std::uint32_t>(145'069'000 + i), 4);    // lon 14.5069
    put(static_cast<std::uint32_t>(460'569'000 + i), 4);    // lat 46.0569
    put(295, 2);
    put(87, 2);
    put(11, 1);
    put(48, 2);
    put(0, 1);                                             // event io id
    put(11, 1);                                            // total io count
    put(4, 1);                                             // 1-byte: ignition, movement, gsm, sleep
    for (const std::uint64_t id : {239, 240, 21, 200}) {
      put(id, 1);
      put(1, 1);
    }
    put(4, 1);                                             // 2-byte: speed, external, battery, current
    for (const std::uint64_t id : {24, 66, 67, 68}) {
      put(id, 1);
      put(12'345, 2);
    }
    put(2, 1);                                             // 4-byte: odometers
    for (const std::uint64_t id : {16, 199}) {
      put(id, 1);
      put(1'234'567, 4);
    }
    put(1, 1);                                             // 8-byte: iButton
    put(78, 1);
    put(0x0102030405060708ull, 8);
  }
  put(records, 1);
  return body;
}

// Teltonika AVL decode per record next to the JSON codec's per location record (same run), and
// a floor: one pass summing the same bytes (what any decoder must at least touch).
int teltonika_decode(int argc, char** argv) {
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "50"));
  const double seconds = std::stod(flag(argc, argv, "--seconds", "2"));
  if (records == 0 || records > 255) throw std::runtime_error("--records must be 1-255 (one AVL packet)");
  const std::int64_t base_ms = now_ms() - 600'000;
  const std::string body = teltonika_body(records, base_ms);
  // Each AVL record with a fix is two canonical records (location + its I/O as a sensor record).
  const double per_canonical = decode_ns("teltonika", "application/x-teltonika-avl", body, 2 * records, seconds);
  const double per_avl = 2 * per_canonical;
  const double json = decode_ns("json", "application/json", location_batch(records, base_ms), records, seconds);
  std::uint64_t checksum = 0;
  std::size_t passes = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    for (const char byte : body) checksum += static_cast<std::uint8_t>(byte);
    ++passes;
  }
  const double floor_ns = std::chrono::duration<double, std::nano>(Clock::now() - started).count() /
                          static_cast<double>(passes * records);
  if (checksum == 0) std::puts("");
  std::printf("{\"benchmark\":\"teltonika_decode\",\"avl_records_per_packet\":%zu,\"bytes_per_avl_record\":%.1f,"
              "\"ns_per_avl_record\":%.1f,\"avl_records_per_s_per_core\":%.0f,\"json_ns_per_location_record\":%.1f,"
              "\"teltonika_avl_to_json\":%.2f,\"byte_pass_floor_ns_per_avl_record\":%.1f}\n",
              records, static_cast<double>(body.size()) / static_cast<double>(records), per_avl, 1e9 / per_avl, json,
              per_avl / json, floor_ns);
  return 0;
}

// GT06 per core: the gt06 codec alone and framing + CRC + codec over a stream of 0x12 location
// packets, next to the JSON codec decoding the same fix as a one-record body (a phone app's
// request) in the same run, measured before and after to show drift on a shared machine.
int gt06_costs(int argc, char** argv) {
  const double seconds = std::stod(flag(argc, argv, "--seconds", "2"));
  // Traccar's 0x12 example (Gt06ProtocolDecoderTest): 54.94535 N, 24.01762 E; content only.
  const std::vector<std::uint8_t> content = {0x0f, 0x0a, 0x14, 0x0e, 0x15, 0x0b, 0xc5, 0x05, 0xe5, 0x1e, 0x78, 0x02, 0x93,
                                             0xa9, 0xe8, 0x00, 0x54, 0x00, 0x00, 0xf6, 0x01, 0x00, 0x6e, 0x00, 0x55, 0xda};
  std::string stream;
  constexpr std::size_t kPackets = 1000;
  for (std::size_t serial = 0; serial < kPackets; ++serial) {
    stream += gateway::tracker::gt06::packet(gateway::tracker::gt06::kLocation, content, static_cast<std::uint16_t>(serial));
  }
  const std::string payload = stream.substr(3, content.size() + 3);  // protocol number, content, serial

  const std::string json_body = location_batch(1, now_ms() - 60'000);
  const double json_before = decode_ns("json", "application/json", json_body, 1, seconds);
  const double codec_ns = 2 * decode_ns("gt06", "application/x-gt06", payload, 2, seconds);  // 2 records a packet

  codecs::Gt06Codec codec(codecs::DecodeLimits{}, {});
  codecs::DecodedBatch batch;
  std::size_t packets = 0;
  const auto started = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - started).count() < seconds) {
    gateway::tracker::gt06::Gt06Protocol protocol;  // one per connection, as the listener makes them
    std::span<const std::uint8_t> rest(reinterpret_cast<const std::uint8_t*>(stream.data()), stream.size());
    while (!rest.empty()) {
      const auto frame = protocol.next_frame(rest);
      batch.clear();
      if (!frame || !codec.decode(frame->payload, {"acme", "356307042441013", "tracker", codecs::Gt06Codec::kContentType},
                                  batch) || batch.records().size() != 2) {
        throw std::runtime_error("GT06 benchmark stream did not decode as expected");
      }
      rest = rest.subspan(frame->consumed);
      ++packets;
    }
  }
  const double framed_ns = std::chrono::duration<double>(Clock::now() - started).count() * 1e9 / static_cast<double>(packets);
  const double json_after = decode_ns("json", "application/json", json_body, 1, seconds);
  const double baseline = (json_before + json_after) / 2;
  std::printf("{\"benchmark\":\"gt06_decode\",\"gt06_codec_ns_per_packet\":%.1f,\"gt06_framed_ns_per_packet\":%.1f,"
              "\"packets_per_second_per_core\":%.0f,\"records_per_second_per_core\":%.0f,"
              "\"baseline_json_one_fix_body_ns\":%.1f,\"json_ns_first\":%.1f,\"json_ns_last\":%.1f,"
              "\"framed_gt06_to_json\":%.2f}\n",
              codec_ns, framed_ns, 1e9 / framed_ns, 2e9 / framed_ns, baseline, json_before, json_after,
              framed_ns / baseline);
  return 0;
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
  }
  return sealed;
}

// How a plain producer run differs from the Kafka sink's way of producing. The defaults are the
// sink's: its librdkafka settings, keyed records, no RD_KAFKA_MSG_F_COPY, a cached topic handle,
// the one tg-route header as RD_KAFKA_V_HEADER, rd_kafka_poll once per 250 records (the sink
// polls once per hand-off of batches, which are 50–500 records), records keyed by device in
// runs of a request's size.
struct ProduceOptions {
  std::vector<std::pair<std::string, std::string>> settings;  // after the sink's defaults
  std::size_t per_transaction = 50'000;
  int partitions = 0;  // 0: the broker auto-creates the topic (num.partitions); else created with this many
  bool keyed = true;   // false: no key, librdkafka's sticky partitioner picks the partition
  // Consecutive records with the same key (one of 64 devices): the gateway produces a request's
  // records together, and they share the device's key, so they go to one partition in a row.
  std::size_t key_run = 250;
  bool copy = false;   // RD_KAFKA_MSG_F_COPY
  bool by_name = false;  // RD_KAFKA_V_TOPIC (a handle lookup under a lock per record)
  bool header_list = false;  // rd_kafka_headers_new + RD_KAFKA_V_HEADERS instead of V_HEADER
  // RD_KAFKA_V_PARTITION: the partition librdkafka's consistent_random partitioner would pick,
  // computed once per key instead of librdkafka hashing the key for every record.
  bool caller_partition = false;
  // A delivery-report callback (as the Kafka sink has): librdkafka then hands every message back
  // to the polling thread instead of freeing it on its broker thread.
  bool delivery_reports = false;
  std::size_t poll_every = 250;
  HeaderMode headers = HeaderMode::compact;
  // 0: as fast as librdkafka takes records; else paced to this rate, a key run at a time, as
  // closed-loop devices feed the gateway (commits are then as often as the sink's interval).
  double records_per_second = 0;
};

struct ProduceResult {
  double records_per_second = 0;
  double cpu_us_per_record = 0;         // the whole process: caller + librdkafka's threads
  double caller_cpu_us_per_record = 0;  // the producing thread (produce calls, polls, commits)
};

// One transactional producer with the Kafka sink's settings (plus `options`). A first
// transaction of 1000 records (topic metadata, partition leaders, producer id) is left out of
// the measured window, and so are producer creation and destruction: the gateway pays those
// once, not per record.
ProduceResult produce_run(const std::string& bootstrap, const std::string& topic, const std::vector<envelope::SealedRecord>& sealed,
                          std::size_t records, const ProduceOptions& options) {
  if (options.partitions > 0) {
    sinks::KafkaSinkConfig cluster;
    cluster.bootstrap_servers = bootstrap;
    sinks::ensure_topic(cluster, topic, options.partitions, 1, {});
  }
  sinks::KafkaSinkConfig sink;  // the sink's default delivery timeout
  auto settings = sinks::default_producer_settings(sink);
  settings.insert(settings.end(), options.settings.begin(), options.settings.end());
  settings.insert(settings.end(), {{"bootstrap.servers", bootstrap},
                                   {"enable.idempotence", "true"},
                                   {"acks", "all"},
                                   {"transactional.id", "bench-" + topic}});
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(name + ": " + error_text);
    }
  }
  if (options.delivery_reports) rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t*, void*) {});
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error_text, sizeof error_text);
  if (!producer) throw std::runtime_error(error_text);
  must(rd_kafka_init_transactions(producer, 30'000), "init_transactions");
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer, topic.c_str(), nullptr);

  // The routing fields as four separate headers, for comparison with the one compact header.
  const auto route = envelope::decode_route_header(sealed[0].route_header);
  const std::string event_time = std::to_string(route->event_time_ms);
  // rd_kafka_produceva takes the same arguments as the sink's rd_kafka_producev, as an array
  // that the options decide once: topic, key, value, header(s), flags.
  std::vector<std::string> keys;
  for (int device = 0; device < 64; ++device) keys.push_back("sim-" + std::to_string(device));
  std::vector<std::int32_t> partitions(keys.size(), RD_KAFKA_PARTITION_UA);  // caller_partition, set after the first transaction
  const auto produce_one = [&](std::size_t i) {
    const envelope::SealedRecord& record = sealed[i % sealed.size()];
    const std::size_t device = (i / options.key_run) % keys.size();
    const std::string& key = keys[device];
    rd_kafka_vu_t args[6] = {};
    std::size_t count = 0;
    args[count].vtype = options.by_name ? RD_KAFKA_VTYPE_TOPIC : RD_KAFKA_VTYPE_RKT;
    if (options.by_name) {
      args[count++].u.cstr = topic.c_str();
    } else {
      args[count++].u.rkt = handle;
    }
    if (options.keyed) {
      args[count].vtype = RD_KAFKA_VTYPE_KEY;
      args[count++].u.mem = {const_cast<char*>(key.data()), key.size()};
    }
    if (partitions[device] != RD_KAFKA_PARTITION_UA) {
      args[count].vtype = RD_KAFKA_VTYPE_PARTITION;
      args[count++].u.i32 = partitions[device];
    }
    args[count].vtype = RD_KAFKA_VTYPE_VALUE;
    args[count++].u.mem = {const_cast<char*>(record.value.data()), record.value.size()};
    rd_kafka_headers_t* list = nullptr;
    if (options.headers == HeaderMode::compact && !options.header_list) {
      args[count].vtype = RD_KAFKA_VTYPE_HEADER;
      args[count++].u.header = {envelope::kRouteHeader.data(), record.route_header.data(),
                                static_cast<ssize_t>(record.route_header.size())};
    } else if (options.headers != HeaderMode::none) {
      list = rd_kafka_headers_new(4);
      if (options.headers == HeaderMode::compact) {
        rd_kafka_header_add(list, envelope::kRouteHeader.data(), -1, record.route_header.data(),
                            static_cast<ssize_t>(record.route_header.size()));
      } else {
        rd_kafka_header_add(list, "tenant", -1, route->tenant.data(), static_cast<ssize_t>(route->tenant.size()));
        rd_kafka_header_add(list, "device_type", -1, route->device_type.data(), static_cast<ssize_t>(route->device_type.size()));
        rd_kafka_header_add(list, "event_time", -1, event_time.data(), static_cast<ssize_t>(event_time.size()));
        rd_kafka_header_add(list, "msg_id", -1, record.msg_id.data(), static_cast<ssize_t>(record.msg_id.size()));
      }
      args[count].vtype = RD_KAFKA_VTYPE_HEADERS;
      args[count++].u.headers = list;
    }
    args[count].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    args[count++].u.i = options.copy ? RD_KAFKA_MSG_F_COPY : 0;
    for (;;) {
      rd_kafka_error_t* error = rd_kafka_produceva(producer, args, count);
      if (!error) return;
      if (rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (list) rd_kafka_headers_destroy(list);  // owned by the message only when produced
        must(error, "produce");
      }
      rd_kafka_error_destroy(error);
      rd_kafka_poll(producer, 1);
    }
  };
  const auto commit = [&] {
    must(rd_kafka_commit_transaction(producer, 60'000), "commit_transaction");
  };

  must(rd_kafka_begin_transaction(producer), "begin_transaction");
  for (std::size_t i = 0; i < 1000; ++i) produce_one(i);
  commit();
  if (options.caller_partition) {
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(producer, 0, handle, &metadata, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("metadata of " + topic);
    }
    const int count = metadata->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(metadata);
    for (std::size_t device = 0; device < keys.size(); ++device) {
      partitions[device] = rd_kafka_msg_partitioner_consistent_random(handle, keys[device].data(), keys[device].size(),
                                                                      count, nullptr, nullptr);
    }
  }

  const double cpu_before = cpu_seconds(RUSAGE_SELF);
  const double caller_before = cpu_seconds(RUSAGE_THREAD);
  const auto started = Clock::now();
  std::size_t in_transaction = 0;
  must(rd_kafka_begin_transaction(producer), "begin_transaction");
  for (std::size_t i = 0; i < records; ++i) {
    if (options.records_per_second > 0 && i % options.key_run == 0) {
      std::this_thread::sleep_until(started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                                  static_cast<double>(i) / options.records_per_second)));
    }
    produce_one(i);
    if ((i + 1) % options.poll_every == 0) rd_kafka_poll(producer, 0);
    if (++in_transaction == options.per_transaction) {
      commit();
      must(rd_kafka_begin_transaction(producer), "begin_transaction");
      in_transaction = 0;
    }
  }
  commit();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  const double per_record = 1e6 / static_cast<double>(records);
  const ProduceResult result{static_cast<double>(records) / elapsed, (cpu_seconds(RUSAGE_SELF) - cpu_before) * per_record,
                             (cpu_seconds(RUSAGE_THREAD) - caller_before) * per_record};
  rd_kafka_topic_destroy(handle);
  rd_kafka_destroy(producer);
  return result;
}

int kafka_baseline(int argc, char** argv) {
  const std::string bootstrap = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "1000000"));
  ProduceOptions options;
  options.per_transaction = std::stoul(flag(argc, argv, "--transaction-records", "50000"));
  options.key_run = std::stoul(flag(argc, argv, "--key-run", "250"));
  options.partitions = std::stoi(flag(argc, argv, "--partitions", "0"));
  // --librdkafka 'name=value,…': the settings a benchmark also gave the gateway's sink
  // (TELEGATE_BENCH_LIBRDKAFKA), so that the baseline compares like with like.
  const std::string settings = flag(argc, argv, "--librdkafka", "");
  for (std::size_t start = 0; start < settings.size();) {
    const std::size_t end = std::min(settings.find(',', start), settings.size());
    const std::string setting = settings.substr(start, end - start);
    const std::size_t equals = setting.find('=');
    if (equals == std::string::npos) throw std::invalid_argument("--librdkafka: expected name=value, got " + setting);
    options.settings.emplace_back(setting.substr(0, equals), setting.substr(equals + 1));
    start = end + 1;
  }
  const auto sealed = prebuilt_envelopes();
  const ProduceResult run = produce_run(bootstrap, "bench.baseline." + std::to_string(now_ms()), sealed, records, options);
  // The floor for the gateway's CPU per record: librdkafka's cost (this thread and its own).
  std::printf("{\"benchmark\":\"kafka-baseline\",\"records\":%zu,\"transaction_records\":%zu,"
              "\"records_per_second\":%.0f,\"cpu_us_per_record\":%.3f,\"caller_cpu_us_per_record\":%.3f,"
              "\"envelope_bytes\":%zu}\n",
              records, options.per_transaction, run.records_per_second, run.cpu_us_per_record,
              run.caller_cpu_us_per_record, sealed[0].value.size());
  return 0;
}

int kafka_topic(int argc, char** argv) {
  sinks::KafkaSinkConfig cluster;
  cluster.bootstrap_servers = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  sinks::ensure_topic(cluster, flag(argc, argv, "--topic", ""), std::stoi(flag(argc, argv, "--partitions", "4")), 1, {});
  return 0;
}

// What Kafka headers cost: the same envelopes with no header, the one compact tg-route header,
// and the routing fields as four separate headers; each rate relative to no header.
int kafka_headers(int argc, char** argv) {
  const std::string bootstrap = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "500000"));
  ProduceOptions options;
  options.per_transaction = std::stoul(flag(argc, argv, "--transaction-records", "50000"));
  const auto sealed = prebuilt_envelopes();
  const std::string run = std::to_string(now_ms());
  const auto rate = [&](const char* name, HeaderMode mode) {
    options.headers = mode;
    return produce_run(bootstrap, std::string("bench.") + name + "." + run, sealed, records, options).records_per_second;
  };
  const double none = rate("h0", HeaderMode::none);
  const double compact = rate("h1", HeaderMode::compact);
  const double separate = rate("h4", HeaderMode::separate);
  std::printf("{\"benchmark\":\"kafka-headers\",\"records\":%zu,\"no_header_per_second\":%.0f,"
              "\"one_compact_header_per_second\":%.0f,\"four_headers_per_second\":%.0f,"
              "\"compact_ratio\":%.2f,\"four_ratio\":%.2f}\n",
              records, none, compact, separate, compact / none, separate / none);
  return 0;
}

// The librdkafka floor: the plain producer's CPU per record under one setting changed at a time
// against the Kafka sink's defaults, which run first, in the middle and last (the spread of
// those three is the noise of the run). One JSON line per variant, then a summary.
int kafka_floor(int argc, char** argv) {
  const std::string bootstrap = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "500000"));
  const std::string only = flag(argc, argv, "--only", "");
  const auto sealed = prebuilt_envelopes();
  using Settings = std::vector<std::pair<std::string, std::string>>;
  const auto with = [](Settings settings) { return ProduceOptions{.settings = std::move(settings)}; };
  const auto changed = [](auto change) {
    ProduceOptions options;
    change(options);
    return options;
  };
  const std::vector<std::pair<std::string, ProduceOptions>> variants = {
      {"sink defaults", {}},
      {"compression none", with({{"compression.type", "none"}})},
      {"compression zstd", with({{"compression.type", "zstd"}})},
      {"linger.ms 5", with({{"linger.ms", "5"}})},
      {"linger.ms 1000", with({{"linger.ms", "1000"}})},
      {"batch.size 100000", with({{"batch.size", "100000"}})},
      {"batch.num.messages 100000", with({{"batch.num.messages", "100000"}})},
      {"batch.num.messages 100000, batch.size 4000000, message.max.bytes 4000000",
       with({{"batch.num.messages", "100000"}, {"batch.size", "4000000"}, {"message.max.bytes", "4000000"}})},
      {"queue.buffering.max.messages/kbytes librdkafka defaults",
       with({{"queue.buffering.max.messages", "100000"}, {"queue.buffering.max.kbytes", "1048576"}})},
      {"message.copy.max.bytes 0 (values referenced, not copied, into requests)", with({{"message.copy.max.bytes", "0"}})},
      {"sink defaults", {}},
      {"1 partition", changed([](ProduceOptions& o) { o.partitions = 1; })},
      {"16 partitions", changed([](ProduceOptions& o) { o.partitions = 16; })},
      {"no key (sticky partitioner)", changed([](ProduceOptions& o) { o.keyed = false; })},
      {"key changes every record (the old baseline)", changed([](ProduceOptions& o) { o.key_run = 1; })},
      {"10000 records per transaction", changed([](ProduceOptions& o) { o.per_transaction = 10'000; })},
      {"200000 records per transaction", changed([](ProduceOptions& o) { o.per_transaction = 200'000; })},
      {"paced to 110 000 records/s, a commit per 11 000 records (the gateway's 100 ms)", changed([](ProduceOptions& o) {
         o.records_per_second = 110'000;
         o.per_transaction = 11'000;
       })},
      {"paced to 220 000 records/s, a commit per 22 000 records", changed([](ProduceOptions& o) {
         o.records_per_second = 220'000;
         o.per_transaction = 22'000;
       })},
      {"no header", changed([](ProduceOptions& o) { o.headers = HeaderMode::none; })},
      {"the old baseline: key per record, F_COPY, topic by name, header list, poll per record", changed([](ProduceOptions& o) {
         o.key_run = 1;
         o.copy = true;
         o.by_name = true;
         o.header_list = true;
         o.poll_every = 1;
       })},
      {"F_COPY", changed([](ProduceOptions& o) { o.copy = true; })},
      {"poll per record", changed([](ProduceOptions& o) { o.poll_every = 1; })},
      {"partition chosen by the caller, once per key", changed([](ProduceOptions& o) { o.caller_partition = true; })},
      {"delivery-report callback (as the sink)", changed([](ProduceOptions& o) { o.delivery_reports = true; })},
      {"delivery-report callback, delivery.report.only.error", changed([](ProduceOptions& o) {
         o.delivery_reports = true;
         o.settings = {{"delivery.report.only.error", "true"}};
       })},
      {"sink defaults", {}},
  };
  const std::string run = std::to_string(now_ms());
  std::vector<double> defaults;
  std::vector<std::pair<std::string, ProduceResult>> results;
  for (std::size_t i = 0; i < variants.size(); ++i) {
    const auto& [name, options] = variants[i];
    if (!only.empty() && name != "sink defaults" && name.find(only) == std::string::npos) continue;
    const ProduceResult result = produce_run(bootstrap, "bench.floor." + run + "." + std::to_string(i), sealed, records, options);
    if (name == "sink defaults") defaults.push_back(result.cpu_us_per_record);
    results.emplace_back(name, result);
    std::printf("{\"benchmark\":\"kafka-floor\",\"variant\":\"%s\",\"records\":%zu,\"records_per_second\":%.0f,"
                "\"cpu_us_per_record\":%.3f,\"caller_cpu_us_per_record\":%.3f,\"librdkafka_threads_us_per_record\":%.3f}\n",
                name.c_str(), records, result.records_per_second, result.cpu_us_per_record, result.caller_cpu_us_per_record,
                result.cpu_us_per_record - result.caller_cpu_us_per_record);
    std::fflush(stdout);
  }
  double mean = 0;
  for (const double d : defaults) mean += d / static_cast<double>(defaults.size());
  std::printf("\n| variant | records/s | CPU µs/record | caller thread | librdkafka threads | vs sink defaults |\n|---|---|---|---|---|---|\n");
  for (const auto& [name, r] : results) {
    std::printf("| %s | %.0f | %.2f | %.2f | %.2f | %.2f |\n", name.c_str(), r.records_per_second, r.cpu_us_per_record,
                r.caller_cpu_us_per_record, r.cpu_us_per_record - r.caller_cpu_us_per_record, r.cpu_us_per_record / mean);
  }
  return 0;
}

// ---- spool ------------------------------------------------------------------------------------

// The Kafka sink behind a gate: while closed it reports not ready, so the spooling sink spools.
// Lifecycle: owned by the spooling sink; `open` is flipped by the bench's main thread.
class GatedSink final : public sinks::Sink {
 public:
  GatedSink(std::unique_ptr<sinks::Sink> inner, const std::atomic<bool>& open) : inner_(std::move(inner)), open_(open) {}
  std::string_view name() const noexcept override { return inner_->name(); }
  void start() override { inner_->start(); }
  void submit(sinks::SinkBatch batch) override { inner_->submit(std::move(batch)); }
  bool ready() const noexcept override { return open_ && inner_->ready(); }
  void stop() override { inner_->stop(); }

 private:
  std::unique_ptr<sinks::Sink> inner_;
  const std::atomic<bool>& open_;
};

double gauge_value(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
  }
  return -1;
}

// Submits `records` records in batches of `batch` and waits for every completion; records/s.
double submit_all(sinks::Sink& sink, const std::vector<envelope::SealedRecord>& sealed, const std::string& topic,
                  std::size_t records, std::size_t batch) {
  std::atomic<std::size_t> done{0}, failed{0};
  const auto started = Clock::now();
  for (std::size_t at = 0; at < records; at += batch) {
    sinks::SinkBatch out;
    for (std::size_t i = at; i < std::min(records, at + batch); ++i) {
      out.records.push_back(sealed[i % sealed.size()]);
      out.records.back().topic = topic;
    }
    const std::size_t count = out.records.size();
    out.on_complete = [&done, &failed, count](sinks::SinkResult result) {
      if (!result) failed += count;
      done += count;
    };
    sink.submit(std::move(out));
  }
  while (done < records) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (failed > 0) throw std::runtime_error(std::to_string(failed.load()) + " records failed");
  return static_cast<double>(records) / std::chrono::duration<double>(Clock::now() - started).count();
}

int spool_costs(int argc, char** argv) {
  sinks::KafkaSinkConfig kafka;
  kafka.bootstrap_servers = flag(argc, argv, "--bootstrap", "127.0.0.1:19092");
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "200000"));
  const std::size_t batch = std::stoul(flag(argc, argv, "--batch", "100"));
  const std::string fsync = flag(argc, argv, "--fsync", "always");
  const auto sealed = prebuilt_envelopes();
  const std::string run = std::to_string(now_ms());
  const std::string topic = "bench.spool." + run;
  prometheus::Registry registry;

  kafka.transactional_id_prefix = "bench-plain-" + run;
  auto plain = sinks::make_kafka_sink(kafka, registry);
  plain->start();
  const double plain_rate = submit_all(*plain, sealed, topic, records, batch);
  plain->stop();

  const auto directory = std::filesystem::temp_directory_path() / ("telegate-bench-spool-" + run);
  sinks::SpoolConfig spool;
  spool.directory = directory;
  spool.fsync = fsync == "never" ? sinks::FsyncPolicy::never : fsync == "interval" ? sinks::FsyncPolicy::interval
                                                                                    : sinks::FsyncPolicy::always;
  spool.position_topic = topic + ".positions";
  kafka.transactional_id_prefix = "bench-spool-" + run;
  std::atomic<bool> open{true};
  prometheus::Registry spool_registry;
  auto spooling = sinks::make_spooling_sink(
      spool, std::make_unique<GatedSink>(sinks::make_kafka_sink(kafka, spool_registry), open),
      {spool.position_topic, 0, "bench", {}}, [] { return std::optional<std::uint64_t>(); }, spool_registry);
  spooling->start();
  const double direct_rate = submit_all(*spooling, sealed, topic, records, batch);
  open = false;
  const double append_rate = submit_all(*spooling, sealed, topic, records, batch);
  const auto replay_started = Clock::now();
  open = true;
  while (gauge_value(spool_registry, "telegate_spool_mode") != 0 ||
         gauge_value(spool_registry, "telegate_spool_pending_records") != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double replay_rate =
      static_cast<double>(records) / std::chrono::duration<double>(Clock::now() - replay_started).count();
  spooling->stop();
  std::filesystem::remove_all(directory);
  std::printf("{\"benchmark\":\"spool\",\"records\":%zu,\"batch\":%zu,\"fsync\":\"%s\",\"kafka_sink_per_second\":%.0f,"
              "\"spooling_sink_direct_per_second\":%.0f,\"spool_append_per_second\":%.0f,"
              "\"spool_replay_per_second\":%.0f,\"direct_ratio\":%.2f,\"append_ratio\":%.2f,\"replay_ratio\":%.2f}\n",
              records, batch, fsync.c_str(), plain_rate, direct_rate, append_rate, replay_rate, direct_rate / plain_rate,
              append_rate / plain_rate, replay_rate / plain_rate);
  return 0;
}

// ---- coap -------------------------------------------------------------------------------------

std::string coap_option(int& previous, int number, std::string_view value) {
  std::string out;
  const int delta = number - previous;
  previous = number;
  std::string extended;
  auto nibble = [&extended](std::size_t x) -> int {
    if (x < 13) return static_cast<int>(x);
    if (x < 269) {
      extended += static_cast<char>(x - 13);
      return 13;
    }
    extended += static_cast<char>((x - 269) >> 8);
    extended += static_cast<char>((x - 269) & 0xff);
    return 14;
  };
  const int d = nibble(static_cast<std::size_t>(delta));
  const std::string delta_extended = extended;
  extended.clear();
  const int l = nibble(value.size());
  out += static_cast<char>(d << 4 | l);
  out += delta_extended + extended;
  out += value;
  return out;
}

struct CoapDevice {
  int fd = -1;
  std::size_t index = 0;
  std::uint16_t mid = 0;
  std::uint32_t token = 0;
  std::string datagram;  // the request in flight, for retransmission
  Clock::time_point sent_at;
  Clock::time_point retransmit_at;
  std::size_t records = 0;  // in the request in flight; 0: idle
};

double coap_percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(rank, sorted.size() - 1)];
}

int coap_load(int argc, char** argv) {
  const std::string host = flag(argc, argv, "--host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(std::stoul(flag(argc, argv, "--port", "5683")));
  const std::size_t devices = std::stoul(flag(argc, argv, "--devices", "64"));
  const std::size_t batch = std::stoul(flag(argc, argv, "--batch", "4"));
  const std::size_t records = std::stoul(flag(argc, argv, "--records", "200000"));
  if (devices == 0 || batch == 0) throw std::invalid_argument("--devices and --batch must be at least 1");
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &target.sin_addr) != 1) throw std::invalid_argument("--host must be IPv4");

  std::vector<CoapDevice> fleet(devices);
  std::vector<pollfd> fds(devices);
  for (std::size_t i = 0; i < devices; ++i) {
    fleet[i].fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    fleet[i].index = i;
    fleet[i].mid = static_cast<std::uint16_t>(i * 1000);
    if (::connect(fleet[i].fd, reinterpret_cast<const sockaddr*>(&target), sizeof target) != 0) {
      throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
    }
    fds[i] = pollfd{fleet[i].fd, POLLIN, 0};
  }

  std::size_t remaining = records;
  std::size_t accepted = 0;
  std::size_t requests = 0;
  std::size_t in_flight = 0;
  std::vector<double> latencies;
  std::map<std::string, std::size_t> outcomes;
  // Unique per run: the gateway de-duplicates by msg_id, and warm-up runs come first.
  std::uint64_t sequence = static_cast<std::uint64_t>(std::random_device{}()) << 32;
  const std::int64_t base_ms = now_ms() - 60'000;

  auto send_next = [&](CoapDevice& device) {
    if (remaining == 0) return;
    const std::size_t count = std::min(batch, remaining);
    remaining -= count;
    const std::string id = "sim-" + std::to_string(device.index);
    std::string body = "[";
    for (std::size_t i = 0; i < count; ++i, ++sequence) {
      char record[256];
      const int length = std::snprintf(
          record, sizeof record,
          R"(%s{"device_id":"%s","type":"location","ts":%lld,"msg_id":"c%llu","lat":46.0569,"lon":14.5058,"speed":13.4})",
          i ? "," : "", id.c_str(), static_cast<long long>(base_ms + static_cast<std::int64_t>(sequence % 50'000)),
          static_cast<unsigned long long>(sequence));
      body.append(record, static_cast<std::size_t>(length));
    }
    body += "]";
    ++device.mid;
    ++device.token;
    std::string datagram;
    datagram += static_cast<char>(0x44);  // version 1, CON, 4-byte token
    datagram += static_cast<char>(0x02);  // POST
    datagram += static_cast<char>(device.mid >> 8);
    datagram += static_cast<char>(device.mid & 0xff);
    datagram.append(reinterpret_cast<const char*>(&device.token), 4);
    int previous = 0;
    datagram += coap_option(previous, 11, "v1");
    datagram += coap_option(previous, 11, "telemetry");
    datagram += coap_option(previous, 12, std::string(1, '\x32'));  // 50: application/json
    datagram += coap_option(previous, 15, "t=sim-token-" + std::to_string(device.index));
    datagram += '\xff';
    datagram += body;
    device.datagram = std::move(datagram);
    device.records = count;
    device.sent_at = Clock::now();
    device.retransmit_at = device.sent_at + std::chrono::seconds(2);
    ::send(device.fd, device.datagram.data(), device.datagram.size(), 0);
    ++requests;
    ++in_flight;
  };
  auto finish = [&](CoapDevice& device, int code) {
    if (code == 204) {
      accepted += device.records;
      latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - device.sent_at).count());
    }
    ++outcomes[std::to_string(code / 100) + "." + (code % 100 < 10 ? "0" : "") + std::to_string(code % 100)];
    device.records = 0;
    --in_flight;
    send_next(device);
  };

  const auto started = Clock::now();
  for (auto& device : fleet) send_next(device);
  while (in_flight > 0) {
    const int ready = ::poll(fds.data(), fds.size(), 100);
    const auto now = Clock::now();
    for (std::size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      CoapDevice& device = fleet[i];
      unsigned char reply[2048];
      const auto length = ::recv(device.fd, reply, sizeof reply, 0);
      if (length < 4 || device.records == 0) continue;
      const int type = (reply[0] >> 4) & 3;
      const int code = (reply[1] >> 5) * 100 + (reply[1] & 0x1f);
      const auto mid = static_cast<std::uint16_t>(reply[2] << 8 | reply[3]);
      if (type == 0 || type == 1) {  // separate response: ACK a CON, match the token
        if (type == 0) {
          const unsigned char ack[4] = {0x60, 0x00, reply[2], reply[3]};
          ::send(device.fd, ack, sizeof ack, 0);
        }
        if ((reply[0] & 0x0f) == 4 && length >= 8 && std::memcmp(reply + 4, &device.token, 4) == 0) {
          ++outcomes["separate"];
          finish(device, code);
        }
      } else if (type == 2 && mid == device.mid) {
        if (code == 0) {
          device.retransmit_at = now + std::chrono::seconds(30);  // the separate response will come
        } else {
          finish(device, code);
        }
      }
    }
    for (auto& device : fleet) {
      if (device.records && now >= device.retransmit_at) {
        ++outcomes["retransmitted"];
        ::send(device.fd, device.datagram.data(), device.datagram.size(), 0);
        device.retransmit_at = now + std::chrono::seconds(2);
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  for (auto& device : fleet) ::close(device.fd);

  std::sort(latencies.begin(), latencies.end());
  std::string outcome_json;
  for (const auto& [name, count] : outcomes) {
    // Appended piece by piece: g++ 12 -O3 warns falsely (-Wrestrict) on `"…" + name + …` here.
    outcome_json += outcome_json.empty() ? "\"" : ",\"";
    outcome_json += name;
    outcome_json += "\":";
    outcome_json += std::to_string(count);
  }
  std::printf(
      "{\"records\":%zu,\"accepted\":%zu,\"requests\":%zu,\"seconds\":%.3f,\"records_per_second\":%.0f,"
      "\"ack_latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"outcomes\":{%s}}\n",
      records, accepted, requests, seconds, static_cast<double>(accepted) / seconds, coap_percentile(latencies, 50),
      coap_percentile(latencies, 90), coap_percentile(latencies, 99), latencies.empty() ? 0.0 : latencies.back(),
      outcome_json.c_str());
  return accepted == records ? 0 : 1;
}

}  // namespace

// Heap bytes in use (not RSS: freed memory stays resident and would be reused unseen).
std::size_t heap_bytes() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// The de-duplication window as the request path uses it: requests of --per-request records with
// UUID msg_ids (hashed, reserved together, their journal written), each settled as committed
// --lag requests later (the batches in flight meanwhile). Three phases of --entries records each:
// `fill` from an empty window (it grows, as in a fresh gateway or the end-to-end bench), then
// `steady` and `steady-again` on a full one, as in a gateway that has run for a window: a window
// of two tables rotated whole drops a full table only from the second lap after the fill on (a
// per-key FIFO window is steady from the first). Memory per entry after each phase, next to a std::unordered_set<std::uint64_t> holding the same number of keys, same
// run.
int dedup_costs(int argc, char** argv) {
  const std::size_t entries = std::stoul(flag(argc, argv, "--entries", "1000000"));
  const std::size_t per_request = std::stoul(flag(argc, argv, "--per-request", "250"));
  const std::size_t lag = std::stoul(flag(argc, argv, "--lag", "64"));
  constexpr std::size_t kIdBytes = 36;
  constexpr std::size_t kPhases = 3;
  std::string ids(kPhases * entries * kIdBytes, '0');  // UUIDv7-shaped: time-ordered prefix, random rest
  std::mt19937_64 random(42);
  for (std::size_t i = 0; i < kPhases * entries; ++i) {
    const std::uint64_t rest = random();
    std::array<char, 64> text{};
    std::snprintf(text.data(), text.size(), "%08llx-%04llx-7%03llx-8%03llx-%012llx",
                  static_cast<unsigned long long>(0x0190f3a4 + i / 65536), static_cast<unsigned long long>(i % 65536),
                  static_cast<unsigned long long>(rest & 0xfff), static_cast<unsigned long long>(rest >> 12 & 0xfff),
                  static_cast<unsigned long long>(rest >> 24 & 0xffffffffffffull));
    std::memcpy(ids.data() + i * kIdBytes, text.data(), kIdBytes);
  }
  const auto id = [&](std::size_t i) { return std::string_view(ids).substr(i * kIdBytes, kIdBytes); };

  const std::size_t before_baseline = heap_bytes();
  {
    std::unordered_set<std::uint64_t> baseline;
    for (std::size_t i = 0; i < entries; ++i) baseline.insert(std::hash<std::string_view>{}(id(i)));
    std::printf("{\"benchmark\":\"dedup_baseline_unordered_set\",\"entries\":%zu,\"bytes_per_entry\":%.1f}\n", entries,
                static_cast<double>(heap_bytes() - before_baseline) / static_cast<double>(entries));
  }
  const std::size_t before = heap_bytes();
  gateway::DedupWindow window(entries, std::chrono::seconds(3600));
  std::vector<std::string_view> msg_ids;
  std::vector<gateway::DedupWindow::Key> keys;
  std::vector<gateway::DedupWindow::Seen> seen;
  std::deque<gateway::DedupWindow::Reservation> in_flight;
  std::string journal;
  const auto phase = [&](const char* name, std::size_t first) {
    const double cpu_before = cpu_seconds(RUSAGE_THREAD);
    for (std::size_t at = first; at < first + entries; at += per_request) {
      const std::size_t count = std::min(per_request, first + entries - at);
      const std::string device = "truck-" + std::to_string(at / per_request % 1000);
      const gateway::DedupWindow::KeyHasher key_of("acme", device);
      msg_ids.clear();
      for (std::size_t i = at; i < at + count; ++i) msg_ids.push_back(id(i));
      keys.resize(count);
      key_of(msg_ids, keys);
      seen.resize(count);
      gateway::DedupWindow::Reservation& reserved = in_flight.emplace_back();
      reserved.keys.reserve(count);
      window.reserve_all(keys, gateway::DedupWindow::Clock::now(), seen, reserved);
      if (reserved.keys.size() != count) throw std::runtime_error("unexpected duplicate");
      journal.clear();
      gateway::DedupWindow::append_journal(reserved.keys, journal);
      if (in_flight.size() > lag) {
        window.settle(in_flight.front(), true);
        in_flight.pop_front();
      }
    }
    for (; !in_flight.empty(); in_flight.pop_front()) window.settle(in_flight.front(), true);
    const double ns = (cpu_seconds(RUSAGE_THREAD) - cpu_before) * 1e9 / static_cast<double>(entries);
    std::printf("{\"benchmark\":\"dedup_window\",\"phase\":\"%s\",\"entries\":%zu,\"per_request\":%zu,\"lag\":%zu,"
                "\"ns_per_record\":%.1f,\"bytes_per_entry\":%.1f,\"held\":%zu}\n",
                name, entries, per_request, lag, ns, static_cast<double>(heap_bytes() - before) / static_cast<double>(entries),
                window.size());
  };
  phase("fill", 0);
  phase("steady", entries);
  phase("steady-again", 2 * entries);
  return 0;
}

// One request's admission and release, as the pipeline does it for `device` of `tenant`.
double admission_ns(std::size_t requests, const gateway::QuotaConfig* quotas_config) {
  gateway::InflightBudget budget(200'000, 256u << 20, 0.8, 10'000);
  const std::size_t records = 50, bytes = 50 * 230;
  if (quotas_config == nullptr) {
    const auto started = Clock::now();
    for (std::size_t i = 0; i < requests; ++i) {
      auto permit = budget.try_acquire(records, bytes);
      if (!permit) throw std::runtime_error("refused");
    }
    return std::chrono::duration<double, std::nano>(Clock::now() - started).count() / static_cast<double>(requests);
  }
  gateway::Quotas quotas(*quotas_config, budget);
  gateway::Metrics metrics;
  constexpr std::size_t kTenants = 10, kDevices = 1000;
  struct Cached {  // what a pipeline worker caches per tenant
    gateway::Quotas::Layer tenant, type;
    const gateway::TenantMetrics* counters;
  };
  std::vector<Cached> tenants;
  std::vector<std::string> tenant_names, device_ids;
  for (std::size_t t = 0; t < kTenants; ++t) {
    tenant_names.push_back("tenant-" + std::to_string(t));
    tenants.push_back({quotas.tenant(tenant_names.back()), quotas.device_type(tenant_names.back(), "tracker"),
                       &metrics.tenant(envelope::SourceProtocol::http, tenant_names.back())});
  }
  for (std::size_t d = 0; d < kDevices; ++d) device_ids.push_back("truck-" + std::to_string(d));
  std::string scratch;
  const auto started = Clock::now();
  for (std::size_t i = 0; i < requests; ++i) {
    const std::size_t device = i % kDevices, tenant = device % kTenants;
    const Cached& cached = tenants[tenant];
    gateway::Quotas::Device& state = quotas.device(tenant_names[tenant], device_ids[device], scratch);
    const std::array<gateway::TokenBucket*, 3> rates{state.rate.get(), cached.type.rate, cached.tenant.rate};
    cached.counters->received->Increment(static_cast<double>(records));
    cached.counters->reject(gateway::RejectReason::validation, 0);
    if (gateway::Quotas::take(rates, static_cast<double>(records), Clock::now())) throw std::runtime_error("over quota");
    auto permit = budget.try_acquire(records, bytes, {cached.tenant.share, cached.type.share, &state.inflight});
    if (!permit) throw std::runtime_error("refused");
    cached.counters->admitted->Increment(static_cast<double>(records));
    cached.counters->acknowledged->Increment(static_cast<double>(records));
    cached.counters->deduplicated->Increment(0);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - started).count() / static_cast<double>(requests);
}

// Completes every batch as it is submitted, on the submitting thread: what remains of a
// request's cost is the pipeline's own.
class CompletingSink final : public sinks::Sink {
 public:
  std::string_view name() const noexcept override { return "completing"; }
  void start() override {}
  void submit(sinks::SinkBatch batch) override {
    const sinks::Completion done = std::move(batch.on_complete);
    done(sinks::Durable::written);
  }
  bool ready() const noexcept override { return true; }
  void stop() override {}
};

int ingest_costs(int argc, char** argv) {
  const std::size_t per_request = std::stoul(flag(argc, argv, "--records-per-request", "1"));
  const double seconds = std::stod(flag(argc, argv, "--seconds", "3"));
  constexpr std::size_t kDevices = 100;
  std::string yaml = "device_types: [{name: tracker, codec: json}]\ntenants: [{name: bench, devices: [";
  for (std::size_t d = 0; d < kDevices; ++d) {
    yaml += (d ? ", " : "") + fmt::format("{{id: sim-{}, device_type: tracker, token_sha256: {}}}", d,
                                           gateway::sha256_hex("sim-token-" + std::to_string(d)));
  }
  yaml += "]}]\n";
  const gateway::GatewayConfig config = gateway::parse_config(yaml);
  codecs::CodecRegistry registry;
  codecs::register_builtin_codecs(registry);
  gateway::CatalogManager catalogs(config, registry, nullptr);
  gateway::InflightBudget budget(config.admission.max_inflight_records, config.admission.max_inflight_bytes, 0.8,
                                 config.admission.device_max_inflight_records);
  gateway::Quotas quotas(config.quotas, budget);
  CompletingSink sink;
  gateway::Metrics metrics;
  gateway::IngestPipeline pipeline(config, sink, budget, quotas, metrics);
  const auto worker = pipeline.make_worker();
  const auto catalog = catalogs.current();

  std::vector<gateway::DeviceIdentity> devices;
  std::vector<std::string> bodies;
  const std::int64_t base_ms = now_ms() - 60'000;
  for (std::size_t d = 0; d < kDevices; ++d) {
    devices.push_back({"bench", "sim-" + std::to_string(d), "tracker"});
    std::string body = per_request > 1 ? "[" : "";
    for (std::size_t i = 0; i < per_request; ++i) {
      body += fmt::format(R"({}{{"device_id":"sim-{}","type":"location","ts":{},"lat":46.05,"lon":14.{}}})",
                          i ? "," : "", d, base_ms + static_cast<std::int64_t>(i), 100 + i % 900);
    }
    bodies.push_back(per_request > 1 ? body + "]" : body);
  }

  gateway::DeviceTypeStages stages(catalog->device_type_shared("tracker"));
  codecs::DecodedBatch batch;
  std::vector<envelope::SealedRecord> sealed;
  const auto stages_only = [&](std::size_t i) {
    gateway::IngestOutcome outcome;
    const gateway::DeviceTypeStages::Input input{devices[i % kDevices], "application/json", bodies[i % kDevices],
                                                 envelope::SourceProtocol::mqtt, config.instance_id};
    if (stages.run(input, batch, outcome, sealed) || sealed.size() != per_request) {
      throw std::runtime_error("benchmark body failed the stages");
    }
  };
  std::size_t acknowledged = 0;
  const auto whole_pipeline = [&](std::size_t i) {
    const auto refused = worker->ingest(
        gateway::IngestRequest{*catalog, devices[i % kDevices], "application/json", bodies[i % kDevices],
                               envelope::SourceProtocol::mqtt},
        [&](gateway::IngestOutcome outcome) { acknowledged += outcome.accepted; });
    if (refused) throw std::runtime_error("benchmark request refused: " + refused->message);
  };
  // The thread's CPU clock, not getrusage: rounds this short need better than its tick.
  const auto thread_cpu_seconds = [] {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
  };
  // The two alternate in rounds of ~0.1 s of CPU, so that the box's noise hits both alike; the
  // medians are reported.
  const auto ns_per_request = [&](const auto& run, double round_seconds) {
    std::size_t requests = 0;
    const double started = thread_cpu_seconds();
    double elapsed = 0;
    while (elapsed < round_seconds) {
      for (int n = 0; n < 256; ++n) run(requests++);
      elapsed = thread_cpu_seconds() - started;
    }
    return elapsed * 1e9 / static_cast<double>(requests);
  };
  ns_per_request(whole_pipeline, 0.3);  // warm-up: the worker's stages, tenant slots, quota entries
  std::vector<double> baseline, whole, beyond;
  for (double spent = 0; spent < seconds; spent += 0.2) {
    baseline.push_back(ns_per_request(stages_only, 0.1));
    whole.push_back(ns_per_request(whole_pipeline, 0.1));
    beyond.push_back(whole.back() - baseline.back());
  }
  if (acknowledged == 0) throw std::runtime_error("no request was acknowledged");
  const auto median = [](std::vector<double> values) {
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
    return values[values.size() / 2];
  };
  std::printf("{\"benchmark\":\"ingest\",\"records_per_request\":%zu,\"rounds\":%zu,"
              "\"baseline_stages_ns_per_request\":%.1f,\"pipeline_ns_per_request\":%.1f,"
              "\"beyond_stages_ns_per_request\":%.1f,\"ratio\":%.2f}\n",
              per_request, whole.size(), median(baseline), median(whole), median(beyond),
              median(whole) / median(baseline));
  return 0;
}

int admission_costs(int argc, char** argv) {
  const std::size_t requests = std::stoul(flag(argc, argv, "--requests", "2000000"));
  const double baseline = admission_ns(requests, nullptr);
  const gateway::QuotaConfig shares_only;
  const double layered = admission_ns(requests, &shares_only);
  gateway::QuotaConfig rated;
  rated.tenants["tenant-0"].rate = {1e12, 1e12};  // never refuses: measures the buckets' cost only
  for (int t = 1; t < 10; ++t) rated.tenants["tenant-" + std::to_string(t)].rate = {1e12, 1e12};
  rated.device_types["tracker"].rate = {1e12, 1e12};
  rated.device = {1e12, 1e12};
  const double with_rates = admission_ns(requests, &rated);
  std::printf("{\"benchmark\":\"admission\",\"records_per_request\":50,\"baseline_global_budget_ns_per_request\":%.1f,"
              "\"layered_shares_device_cap_tenant_counters_ns\":%.1f,\"ratio\":%.2f,"
              "\"plus_rate_quotas_at_3_layers_ns\":%.1f,\"ratio_with_rates\":%.2f}\n",
              baseline, layered, layered / baseline, with_rates, with_rates / baseline);
  return 0;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "pipeline") return pipeline(argc, argv);
    if (mode == "codecs") return codec_costs(argc, argv);
    if (mode == "envelope") return location_and_sensor_costs(argc, argv, "envelope", "seal", "copy", seal_ns);
    if (mode == "validate") return location_and_sensor_costs(argc, argv, "validate", "validate", "read", validate_ns);
    if (mode == "kafka-baseline") return kafka_baseline(argc, argv);
    if (mode == "kafka-headers") return kafka_headers(argc, argv);
    if (mode == "kafka-topic") return kafka_topic(argc, argv);
    if (mode == "kafka-floor") return kafka_floor(argc, argv);
    if (mode == "coap") return coap_load(argc, argv);
    if (mode == "dedup") return dedup_costs(argc, argv);
    if (mode == "spool") return spool_costs(argc, argv);
    if (mode == "admission") return admission_costs(argc, argv);
    if (mode == "ingest") return ingest_costs(argc, argv);
    if (mode == "teltonika-decode") return teltonika_decode(argc, argv);
    if (mode == "gt06-decode") return gt06_costs(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate-bench %s: %s\n", mode.c_str(), error.what());
    return 1;
  }
  std::fprintf(stderr, "usage: telegate-bench pipeline|ingest|codecs|envelope|validate|kafka-baseline|kafka-headers|kafka-floor|spool|coap|dedup|admission|teltonika-decode|gt06-decode [options] (see bench/telegate_bench.cpp)\n");
  return 2;
}
