#include "telegate/gateway/catalog.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "telegate/codecs/clock.hpp"
#include "telegate/codecs/units.hpp"
#include "telegate/gateway/pipeline.hpp"

namespace telegate::gateway {

namespace {

constexpr std::string_view kTypePrefix = "device-type/";
constexpr std::string_view kDevicePrefix = "device/";
constexpr std::string_view kDeletedMarker = R"({"deleted":true})";

void append_string(std::string& out, std::string_view text) { envelope::append_json_string(out, text); }

AdminError admin_error(int status, std::string code, std::string message) {
  return AdminError{status, std::move(code), std::move(message)};
}

std::expected<YAML::Node, AdminError> parse_body(std::string_view body) {
  try {
    YAML::Node node = YAML::Load(std::string(body));
    if (!node.IsMap()) return std::unexpected(admin_error(400, "bad_body", "the body must be a JSON (or YAML) object"));
    return node;
  } catch (const YAML::Exception& error) {
    return std::unexpected(admin_error(400, "bad_body", fmt::format("the body is not valid JSON or YAML (line {}, column {}): {}",
                                                                    error.mark.line + 1, error.mark.column + 1, error.msg)));
  }
}

// "readings.temperature" → the reading's value; canonical names otherwise.
std::optional<double> numeric_field(const codecs::CanonicalRecord& record, std::string_view field) {
  const codecs::Location& at = record.location;
  if (field == "time") return static_cast<double>(record.event_time_ms);
  if (field == "lat") return at.lat;
  if (field == "lon") return at.lon;
  if (field == "alt") return at.alt;
  if (field == "speed") return at.speed;
  if (field == "heading") return at.heading;
  if (field == "accuracy") return at.accuracy;
  if (field == "battery") return at.battery;
  if (field.starts_with("readings.")) {
    const std::string_view name = field.substr(9);
    for (const codecs::SensorReading& reading : record.readings) {
      if (reading.name == name) return reading.value;
    }
  }
  return std::nullopt;
}

// "" when the record has `expected` in `field`, else what differs.
std::string compare_field(const codecs::CanonicalRecord& record, const std::string& field, const std::string& expected) {
  if (field == "device_id" || field == "msg_id" || field == "type") {
    const std::string actual = field == "device_id" ? record.device_id
                               : field == "msg_id"  ? record.msg_id
                                                    : std::string(codecs::to_string(record.type));
    return actual == expected ? "" : fmt::format("{} is '{}', expected '{}'", field, actual, expected);
  }
  static constexpr std::string_view kNumeric[] = {"time", "lat", "lon", "alt", "speed", "heading", "accuracy", "battery"};
  if (std::find(std::begin(kNumeric), std::end(kNumeric), field) == std::end(kNumeric) && !field.starts_with("readings.")) {
    return fmt::format("'{}' is not a canonical field (device_id, msg_id, type, time, lat, lon, alt, speed, heading, "
                       "accuracy, battery, readings.<name>)",
                       field);
  }
  double wanted = 0;
  char* end = nullptr;
  wanted = std::strtod(expected.c_str(), &end);
  if (end != expected.c_str() + expected.size() || expected.empty()) {
    const auto parsed = field == "time" ? codecs::parse_rfc3339_ms(expected) : std::nullopt;
    if (!parsed) return fmt::format("{}: expected value '{}' is not a number", field, expected);
    wanted = static_cast<double>(*parsed);
  }
  const std::optional<double> actual = numeric_field(record, field);
  if (!actual) return fmt::format("{} is absent, expected {}", field, expected);
  const double tolerance = field == "time" ? 0.5 : std::max(1e-9, std::fabs(wanted) * 1e-6);  // written to ~7 digits
  if (std::fabs(*actual - wanted) > tolerance) return fmt::format("{} is {}, expected {}", field, *actual, expected);
  return "";
}

void append_record_json(std::string& out, const codecs::CanonicalRecord& record) {
  out += fmt::format("{{\"index\":{},\"device_id\":", record.index);
  append_string(out, record.device_id);
  out += ",\"type\":";
  append_string(out, codecs::to_string(record.type));
  out += fmt::format(",\"time\":{}", record.event_time_ms);
  if (!record.msg_id.empty()) {
    out += ",\"msg_id\":";
    append_string(out, record.msg_id);
  }
  if (record.type == codecs::MessageType::location) {
    const codecs::Location& at = record.location;
    out += fmt::format(",\"lat\":{},\"lon\":{}", at.lat, at.lon);
    const std::pair<std::string_view, const std::optional<double>*> optional_fields[] = {
        {"alt", &at.alt}, {"speed", &at.speed}, {"heading", &at.heading}, {"accuracy", &at.accuracy}, {"battery", &at.battery}};
    for (const auto& [name, value] : optional_fields) {
      if (*value) out += fmt::format(",\"{}\":{}", name, **value);
    }
  } else {
    out += ",\"readings\":{";
    for (std::size_t i = 0; i < record.readings.size(); ++i) {
      if (i) out += ',';
      append_string(out, record.readings[i].name);
      out += fmt::format(":{}", record.readings[i].value);
    }
    out += '}';
  }
  out += '}';
}

void append_errors_json(std::string& out, const std::vector<codecs::FieldError>& errors) {
  out += '[';
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i) out += ',';
    out += fmt::format("{{\"index\":{},\"field\":", errors[i].index);
    append_string(out, errors[i].field);
    out += ",\"reason\":";
    append_string(out, errors[i].reason);
    out += '}';
  }
  out += ']';
}

// A device identity for dry runs and samples: no real device, so nothing is enforced on it.
DeviceIdentity sample_identity(const DeviceTypeVersion& type) {
  return DeviceIdentity{type.definition.tenants.empty() ? "sample-tenant" : type.definition.tenants.front(),
                        "sample-device", type.definition.name};
}

// Decodes, validates and seals `body` exactly as traffic would; the JSON report lists the
// canonical records, their envelopes and the per-record errors.
std::string run_payload(const std::shared_ptr<const DeviceTypeVersion>& type, std::string_view content_type,
                        std::string_view body, std::string_view gateway_id, bool judge_time) {
  DeviceTypeStages stages(type);
  const DeviceIdentity identity = sample_identity(*type);
  codecs::DecodedBatch batch;
  IngestOutcome outcome;
  std::vector<envelope::SealedRecord> sealed;
  const auto refused = stages.run({identity, content_type, body, envelope::SourceProtocol::http, gateway_id, false, judge_time},
                                  batch, outcome, sealed);
  std::string out = "{\"device_type\":";
  append_string(out, type->definition.name);
  out += fmt::format(",\"version\":{}", type->version);
  if (refused) {
    out += ",\"refused\":{\"message\":";
    append_string(out, refused->message);
    out += "}}";
    return out;
  }
  out += ",\"records\":[";
  std::size_t next_sealed = 0;
  bool first = true;
  for (const codecs::CanonicalRecord& record : batch.records()) {
    const bool rejected = std::any_of(outcome.errors.begin(), outcome.errors.end(),
                                      [&](const codecs::FieldError& error) { return error.index == record.index; });
    if (rejected || next_sealed >= sealed.size()) continue;
    const envelope::SealedRecord& envelope_record = sealed[next_sealed++];
    if (!first) out += ',';
    first = false;
    out += "{\"record\":";
    append_record_json(out, record);
    out += ",\"envelope\":{\"topic\":";
    append_string(out, envelope_record.topic);
    out += ",\"key\":";
    append_string(out, envelope_record.key);
    out += ",\"headers\":{\"tg-route\":";
    append_string(out, envelope_record.route_header);
    for (const auto& [name, value] : envelope_record.headers) {
      out += ',';
      append_string(out, name);
      out += ':';
      append_string(out, value);
    }
    out += "},\"value\":";
    const auto rendered = envelope::render_json(envelope_record.value, type->definition.envelope_format);
    out += rendered ? *rendered : "null";
    out += "}}";
  }
  out += "],\"errors\":";
  append_errors_json(out, outcome.errors);
  out += '}';
  return out;
}

}  // namespace

std::string check_samples(const std::shared_ptr<const DeviceTypeVersion>& type, std::string_view gateway_id) {
  DeviceTypeStages stages(type);
  const DeviceIdentity identity = sample_identity(*type);
  codecs::DecodedBatch batch;
  for (std::size_t i = 0; i < type->definition.samples.size(); ++i) {
    const DeviceTypeSample& sample = type->definition.samples[i];
    const std::string label = sample.name.empty() ? fmt::format("samples[{}]", i) : "sample '" + sample.name + "'";
    IngestOutcome outcome;
    std::vector<envelope::SealedRecord> sealed;
    if (const auto refused = stages.run(
            {identity, sample.content_type, sample.body, envelope::SourceProtocol::http, gateway_id, false, false}, batch,
            outcome, sealed)) {
      return label + ": refused: " + refused->message;
    }
    if (outcome.errors.size() != sample.expect_rejected) {
      std::string reasons;
      for (const auto& error : outcome.errors) {
        reasons += fmt::format("{}record {} {}: {}", reasons.empty() ? "" : "; ", error.index, error.field, error.reason);
      }
      return fmt::format("{}: {} records rejected, expected {}{}{}", label, outcome.errors.size(), sample.expect_rejected,
                         reasons.empty() ? "" : " — ", reasons);
    }
    if (!sample.expect.empty() && sample.expect.size() != sealed.size()) {
      return fmt::format("{}: {} records accepted, expected {}", label, sealed.size(), sample.expect.size());
    }
    std::size_t compared = 0;
    for (const codecs::CanonicalRecord& record : batch.records()) {
      if (compared >= sample.expect.size()) break;
      const bool rejected = std::any_of(outcome.errors.begin(), outcome.errors.end(),
                                        [&](const codecs::FieldError& error) { return error.index == record.index; });
      if (rejected) continue;
      for (const auto& [field, expected] : sample.expect[compared]) {
        if (std::string problem = compare_field(record, field, expected); !problem.empty()) {
          return fmt::format("{}: record {}: {}", label, compared, problem);
        }
      }
      ++compared;
    }
  }
  return "";
}

// ---- Catalog -----------------------------------------------------------------------------

const DeviceTypeVersion* Catalog::device_type(std::string_view name) const {
  const auto found = types_.find(name);
  return found == types_.end() ? nullptr : found->second.get();
}

std::shared_ptr<const DeviceTypeVersion> Catalog::device_type_shared(std::string_view name) const {
  const auto found = types_.find(name);
  return found == types_.end() ? nullptr : found->second;
}

const DeviceTypeVersion* Catalog::by_http_path(std::string_view path) const {
  const auto found = http_paths_.find(path);
  return found == http_paths_.end() ? nullptr : device_type(found->second);
}

const DeviceTypeVersion* Catalog::by_coap_path(std::string_view path) const {
  const auto found = coap_paths_.find(path);
  return found == coap_paths_.end() ? nullptr : device_type(found->second);
}

// ---- CatalogManager ------------------------------------------------------------------------

struct CatalogManager::TypeHistory {
  bool from_config_file = false;
  // Every version in order; a deleted version holds nullptr. The last one is the active one.
  std::map<std::uint64_t, std::shared_ptr<const DeviceTypeVersion>> versions;

  std::shared_ptr<const DeviceTypeVersion> active() const {
    return versions.empty() ? nullptr : versions.rbegin()->second;
  }
  std::uint64_t next_version() const { return versions.empty() ? 1 : versions.rbegin()->first + 1; }
};

struct CatalogManager::StoredDevice {
  std::string tenant;
  DeviceConfig device;
  bool from_config_file = false;
};

CatalogManager::CatalogManager(const GatewayConfig& config, const codecs::CodecRegistry& codecs,
                               std::unique_ptr<CatalogStore> store)
    : config_(config), codecs_(codecs), store_(std::move(store)) {
  const std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < config.device_types.size(); ++i) {
    const DeviceTypeDefinition& definition = config.device_types[i];
    auto compiled = compile(definition, 1, true);
    if (!compiled) throw ConfigError(fmt::format("device_types[{}]", i), compiled.error().message);
    if (std::string failed = check_samples(*compiled, config.instance_id); !failed.empty()) {
      throw ConfigError(fmt::format("device_types[{}].samples", i), failed);
    }
    TypeHistory& history = types_[definition.name];
    history.from_config_file = true;
    history.versions.emplace(1, std::move(*compiled));
  }
  for (const TenantConfig& tenant : config.tenants) {
    for (const DeviceConfig& device : tenant.devices) {
      devices_[tenant.name + "/" + device.id] = StoredDevice{tenant.name, device, true};
    }
  }
  if (store_) {
    std::size_t applied = 0;
    for (const CatalogChange& change : store_->load()) applied += apply_locked(change, false) ? 1 : 0;
    spdlog::info("catalog: {} changes loaded from {}", applied, store_->describe());
  }
  publish_locked();
  if (store_) {
    store_->watch([this](const CatalogChange& change) {
      const std::lock_guard watch_lock(mutex_);
      if (apply_locked(change, true)) publish_locked();
    });
  }
}

CatalogManager::~CatalogManager() {
  store_.reset();  // stops the watch thread before the state it updates goes away
}

std::expected<std::shared_ptr<const DeviceTypeVersion>, AdminError> CatalogManager::compile(
    const DeviceTypeDefinition& definition, std::uint64_t version, bool from_config_file) const {
  auto type = std::make_shared<DeviceTypeVersion>();
  type->definition = definition;
  type->version = version;
  type->from_config_file = from_config_file;
  type->created_ms = codecs::unix_ms_now();
  try {
    codecs::OptionReader options(definition.codec_options, "codec_options");
    type->codec = codecs_.compile(definition.codec, options, config_.decode);
  } catch (const codecs::OptionError& error) {
    return std::unexpected(admin_error(422, "invalid_definition", error.what()));
  }
  auto topic = envelope::TopicTemplate::compile(definition.topic_template.empty() ? config_.sink.topic_template
                                                                                  : definition.topic_template);
  if (!topic) return std::unexpected(admin_error(422, "invalid_definition", "topic_template: " + topic.error().message));
  type->topic = std::move(*topic);
  type->validation = definition.validation.value_or(config_.validation);
  type->definition_json = definition.source_json;
  return type;
}

bool CatalogManager::apply_locked(const CatalogChange& change, bool from_other_replica) {
  const std::string_view key = change.key;
  try {
    if (key.starts_with(kTypePrefix)) {
      const std::string_view rest = key.substr(kTypePrefix.size());
      const std::size_t slash = rest.rfind('/');
      if (slash == std::string_view::npos) return false;
      const std::string name(rest.substr(0, slash));
      const std::uint64_t version = std::stoull(std::string(rest.substr(slash + 1)));
      TypeHistory& history = types_[name];
      if (history.from_config_file) {
        spdlog::warn("catalog: ignoring stored device type {} v{}: the config file defines it", name, version);
        return false;
      }
      if (!change.value || *change.value == kDeletedMarker) {
        history.versions[version] = nullptr;
        return true;
      }
      YAML::Node node = YAML::Load(*change.value);
      codecs::OptionReader reader(node, "");
      DeviceTypeDefinition definition = read_device_type(reader, codecs_, config_.decode);
      if (const auto known = history.versions.find(version);
          known != history.versions.end() && known->second && known->second->definition_json == definition.source_json) {
        return false;  // our own write, read back from the store
      }
      auto compiled = compile(definition, version, false);
      if (!compiled) {
        spdlog::error("catalog: stored device type {} v{} does not compile here: {}", name, version,
                      compiled.error().message);
        return false;
      }
      history.versions[version] = std::move(*compiled);
      if (from_other_replica) spdlog::info("catalog: device type {} v{} from another replica", name, version);
      return true;
    }
    if (key.starts_with(kDevicePrefix)) {
      const std::string path(key.substr(kDevicePrefix.size()));
      const std::size_t slash = path.find('/');
      if (slash == std::string::npos) return false;
      const auto existing = devices_.find(path);
      if (existing != devices_.end() && existing->second.from_config_file) return false;
      if (!change.value) {
        devices_.erase(path);
        return true;
      }
      YAML::Node node = YAML::Load(*change.value);
      codecs::OptionReader reader(node, "");
      devices_[path] = StoredDevice{path.substr(0, slash), read_device(reader), false};
      return true;
    }
  } catch (const std::exception& error) {
    spdlog::error("catalog: ignoring unreadable stored change {}: {}", change.key, error.what());
  }
  return false;
}

void CatalogManager::publish_locked() {
  auto catalog = std::make_shared<Catalog>();
  catalog->generation_ = ++generation_;
  for (const auto& [name, history] : types_) {
    auto active = history.active();
    if (!active) continue;
    if (active->definition.http) catalog->http_paths_.emplace(active->definition.http->path, name);
    if (active->definition.coap) catalog->coap_paths_.emplace(active->definition.coap->path, name);
    catalog->types_.emplace(name, std::move(active));
  }
  for (const auto& [path, stored] : devices_) catalog->devices_.add(stored.tenant, stored.device);
  current_.store(std::move(catalog), std::memory_order_release);
}

AdminResult CatalogManager::write_locked(const CatalogChange& change) {
  if (!store_) return std::unexpected(admin_error(503, "no_store", "no catalog store is configured"));
  if (auto written = store_->append(change); !written) {
    return std::unexpected(admin_error(503, "store_unavailable", "the catalog store did not take the change: " + written.error()));
  }
  return std::string();
}

AdminResult CatalogManager::list_device_types() const {
  const std::lock_guard lock(mutex_);
  std::string out = "{\"device_types\":[";
  bool first = true;
  for (const auto& [name, history] : types_) {
    const auto active = history.active();
    if (!active) continue;
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    append_string(out, name);
    out += fmt::format(",\"version\":{},\"codec\":", active->version);
    append_string(out, active->definition.codec);
    out += ",\"http_path\":";
    if (active->definition.http) {
      append_string(out, active->definition.http->path);
    } else {
      out += "null";
    }
    out += fmt::format(",\"managed_by\":\"{}\"}}", history.from_config_file ? "config_file" : "api");
  }
  out += "]}";
  return out;
}

AdminResult CatalogManager::get_device_type(std::string_view name, std::optional<std::uint64_t> version) const {
  const std::lock_guard lock(mutex_);
  const auto found = types_.find(name);
  if (found == types_.end() || (!version && !found->second.active())) {
    return std::unexpected(admin_error(404, "not_found", "no device type '" + std::string(name) + "'"));
  }
  const TypeHistory& history = found->second;
  const auto chosen = version ? history.versions.find(*version) : std::prev(history.versions.end());
  if (chosen == history.versions.end() || !chosen->second) {
    return std::unexpected(admin_error(404, "not_found", fmt::format("device type '{}' has no version {}", name, *version)));
  }
  const DeviceTypeVersion& type = *chosen->second;
  std::string out = "{\"name\":";
  append_string(out, name);
  out += fmt::format(",\"version\":{},\"active_version\":{},\"managed_by\":\"{}\",\"definition\":", type.version,
                     history.active() ? history.active()->version : 0, history.from_config_file ? "config_file" : "api");
  out += type.definition_json;
  out += ",\"versions\":[";
  bool first = true;
  for (const auto& [number, entry] : history.versions) {
    if (!first) out += ',';
    first = false;
    out += entry ? fmt::format("{{\"version\":{},\"created_ms\":{}}}", number, entry->created_ms)
                 : fmt::format("{{\"version\":{},\"deleted\":true}}", number);
  }
  out += "]}";
  return out;
}

AdminResult CatalogManager::put_device_type(std::string_view name, std::string_view body, bool dry_run) {
  auto node = parse_body(body);
  if (!node) return std::unexpected(node.error());
  const YAML::Node& read_only = *node;
  if (read_only["name"] && read_only["name"].IsScalar() && read_only["name"].Scalar() != name) {
    return std::unexpected(admin_error(422, "invalid_definition", fmt::format("name: '{}' differs from the URL's '{}'",
                                                                               read_only["name"].Scalar(), name)));
  }
  (*node)["name"] = std::string(name);
  DeviceTypeDefinition definition;
  try {
    codecs::OptionReader reader(*node, "");
    definition = read_device_type(reader, codecs_, config_.decode);
  } catch (const codecs::OptionError& error) {
    return std::unexpected(admin_error(422, "invalid_definition", error.what()));
  }

  const std::lock_guard lock(mutex_);
  TypeHistory& history = types_[definition.name];
  if (history.from_config_file) {
    return std::unexpected(admin_error(409, "managed_by_config_file",
                                       "device type '" + definition.name + "' is defined in the config file; change it there"));
  }
  if (definition.http) {
    for (const auto& [other_name, other] : types_) {
      const auto active = other.active();
      if (other_name != definition.name && active && active->definition.http &&
          active->definition.http->path == definition.http->path) {
        return std::unexpected(admin_error(409, "http_path_taken", fmt::format("http.path: {} is already served by device type {}",
                                                                               definition.http->path, other_name)));
      }
    }
  }
  if (definition.coap) {
    for (const auto& [other_name, other] : types_) {
      const auto active = other.active();
      if (other_name != definition.name && active && active->definition.coap &&
          active->definition.coap->path == definition.coap->path) {
        return std::unexpected(admin_error(409, "coap_path_taken", fmt::format("coap.path: {} is already served by device type {}",
                                                                               definition.coap->path, other_name)));
      }
    }
  }
  const std::uint64_t version = history.next_version();
  auto compiled = compile(definition, version, false);
  if (!compiled) return std::unexpected(compiled.error());
  const std::string& stored_json = definition.source_json;
  if (std::string failed = check_samples(*compiled, config_.instance_id); !failed.empty()) {
    if (history.versions.empty()) types_.erase(definition.name);
    return std::unexpected(admin_error(422, "sample_failed", failed));
  }
  std::string samples_json = "[";
  for (std::size_t i = 0; i < definition.samples.size(); ++i) {
    if (i) samples_json += ',';
    samples_json += run_payload(*compiled, definition.samples[i].content_type, definition.samples[i].body,
                                config_.instance_id, false);
  }
  samples_json += ']';
  if (dry_run) {
    if (history.versions.empty()) types_.erase(definition.name);
    return fmt::format("{{\"dry_run\":true,\"valid\":true,\"would_be_version\":{},\"samples\":{}}}", version, samples_json);
  }
  if (auto written = write_locked({fmt::format("{}{}/{}", kTypePrefix, definition.name, version), stored_json}); !written) {
    if (history.versions.empty()) types_.erase(definition.name);
    return written;
  }
  history.versions[version] = std::move(*compiled);
  publish_locked();
  spdlog::info("catalog: device type {} v{} is active", definition.name, version);
  std::string out = "{\"name\":";
  append_string(out, definition.name);
  out += fmt::format(",\"version\":{},\"active\":true,\"samples\":{}}}", version, samples_json);
  return out;
}

AdminResult CatalogManager::delete_device_type(std::string_view name) {
  const std::lock_guard lock(mutex_);
  const auto found = types_.find(name);
  if (found == types_.end() || !found->second.active()) {
    return std::unexpected(admin_error(404, "not_found", "no device type '" + std::string(name) + "'"));
  }
  TypeHistory& history = found->second;
  if (history.from_config_file) {
    return std::unexpected(admin_error(409, "managed_by_config_file",
                                       "device type '" + std::string(name) + "' is defined in the config file"));
  }
  const std::uint64_t version = history.next_version();
  if (auto written = write_locked({fmt::format("{}{}/{}", kTypePrefix, name, version), std::string(kDeletedMarker)});
      !written) {
    return written;
  }
  history.versions[version] = nullptr;
  publish_locked();
  spdlog::info("catalog: device type {} deleted (v{})", name, version);
  return fmt::format("{{\"name\":\"{}\",\"version\":{},\"deleted\":true}}", name, version);
}

AdminResult CatalogManager::rollback_device_type(std::string_view name) {
  const std::lock_guard lock(mutex_);
  const auto found = types_.find(name);
  if (found == types_.end() || found->second.versions.empty()) {
    return std::unexpected(admin_error(404, "not_found", "no device type '" + std::string(name) + "'"));
  }
  TypeHistory& history = found->second;
  if (history.from_config_file) {
    return std::unexpected(admin_error(409, "managed_by_config_file",
                                       "device type '" + std::string(name) + "' is defined in the config file"));
  }
  // The version before the active one; after a delete, the last one that existed ("undelete").
  auto previous = std::prev(history.versions.end());
  if (previous->second) {
    if (previous == history.versions.begin()) {
      return std::unexpected(admin_error(409, "no_previous_version", "device type '" + std::string(name) +
                                                                         "' has no earlier version to roll back to"));
    }
    --previous;
  }
  while (!previous->second && previous != history.versions.begin()) --previous;
  if (!previous->second) {
    return std::unexpected(admin_error(409, "no_previous_version", "no earlier version of '" + std::string(name) + "' exists"));
  }
  const std::uint64_t version = history.next_version();
  auto compiled = compile(previous->second->definition, version, false);
  if (!compiled) return std::unexpected(compiled.error());
  if (auto written = write_locked({fmt::format("{}{}/{}", kTypePrefix, name, version), previous->second->definition_json});
      !written) {
    return written;
  }
  const std::uint64_t restored = previous->first;
  history.versions[version] = std::move(*compiled);
  publish_locked();
  spdlog::info("catalog: device type {} rolled back to v{} as v{}", name, restored, version);
  return fmt::format("{{\"name\":\"{}\",\"version\":{},\"rolled_back_to\":{}}}", name, version, restored);
}

AdminResult CatalogManager::dry_run(std::string_view name, std::string_view content_type, std::string_view body) const {
  const auto type = current()->device_type_shared(name);
  if (!type) return std::unexpected(admin_error(404, "not_found", "no device type '" + std::string(name) + "'"));
  return run_payload(type, content_type, body, config_.instance_id, true);
}

AdminResult CatalogManager::list_devices() const {
  const std::lock_guard lock(mutex_);
  std::string out = "{\"devices\":[";
  bool first = true;
  for (const auto& [path, stored] : devices_) {
    if (!first) out += ',';
    first = false;
    out += "{\"tenant\":";
    append_string(out, stored.tenant);
    out += ",\"id\":";
    append_string(out, stored.device.id);
    out += ",\"device_type\":";
    append_string(out, stored.device.device_type);
    out += fmt::format(",\"managed_by\":\"{}\"}}", stored.from_config_file ? "config_file" : "api");
  }
  out += "]}";
  return out;
}

AdminResult CatalogManager::put_device(std::string_view tenant, std::string_view id, std::string_view body) {
  auto node = parse_body(body);
  if (!node) return std::unexpected(node.error());
  if ((*node)["token"]) {
    // Plain tokens are hashed on arrival and never stored.
    (*node)["token_sha256"] = sha256_hex((*node)["token"].as<std::string>());
    node->remove("token");
  }
  (*node)["id"] = std::string(id);
  DeviceConfig device;
  try {
    codecs::OptionReader reader(*node, "");
    device = read_device(reader);
  } catch (const codecs::OptionError& error) {
    return std::unexpected(admin_error(422, "invalid_device", error.what()));
  }
  const std::string path = std::string(tenant) + "/" + std::string(id);
  const std::lock_guard lock(mutex_);
  const auto type = types_.find(device.device_type);
  if (type == types_.end() || !type->second.active()) {
    return std::unexpected(admin_error(422, "invalid_device", "device_type: no device type '" + device.device_type + "'"));
  }
  const auto& owners = type->second.active()->definition.tenants;
  if (!owners.empty() && std::find(owners.begin(), owners.end(), tenant) == owners.end()) {
    return std::unexpected(admin_error(422, "invalid_device", fmt::format("device_type: {} is not available to tenant {}",
                                                                           device.device_type, tenant)));
  }
  for (const auto& [other_path, other] : devices_) {
    if (other_path != path && other.device.token_sha256 == device.token_sha256) {
      return std::unexpected(admin_error(409, "token_in_use", "token: the same token is already given to another device"));
    }
  }
  if (const auto existing = devices_.find(path); existing != devices_.end() && existing->second.from_config_file) {
    return std::unexpected(admin_error(409, "managed_by_config_file", "device " + path + " is defined in the config file"));
  }
  std::string stored = "{\"id\":";
  append_string(stored, device.id);
  stored += ",\"device_type\":";
  append_string(stored, device.device_type);
  stored += ",\"token_sha256\":";
  append_string(stored, device.token_sha256);
  stored += '}';
  if (auto written = write_locked({std::string(kDevicePrefix) + path, stored}); !written) return written;
  devices_[path] = StoredDevice{std::string(tenant), device, false};
  publish_locked();
  std::string out = "{\"tenant\":";
  append_string(out, tenant);
  out += ",\"id\":";
  append_string(out, id);
  out += ",\"device_type\":";
  append_string(out, device.device_type);
  out += '}';
  return out;
}

AdminResult CatalogManager::delete_device(std::string_view tenant, std::string_view id) {
  const std::string path = std::string(tenant) + "/" + std::string(id);
  const std::lock_guard lock(mutex_);
  const auto found = devices_.find(path);
  if (found == devices_.end()) return std::unexpected(admin_error(404, "not_found", "no device " + path));
  if (found->second.from_config_file) {
    return std::unexpected(admin_error(409, "managed_by_config_file", "device " + path + " is defined in the config file"));
  }
  if (auto written = write_locked({std::string(kDevicePrefix) + path, std::nullopt}); !written) return written;
  devices_.erase(found);
  publish_locked();
  return std::string("{\"deleted\":true}");
}

}  // namespace telegate::gateway
