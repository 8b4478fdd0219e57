// The onboarding catalog: versioned device types and provisioned devices, changed at run time.
//
// Listeners and pipeline workers read an immutable Catalog snapshot; an admin change builds and
// validates a complete new snapshot (codec options compiled, samples run) and only then
// publishes it, so traffic never sees a half-applied definition and requests already in flight
// finish with the version they started with. Every change is first written to a CatalogStore
// (a compacted Kafka topic shared by all replicas, or a local file) and applied in store order,
// so replicas converge on the same versions. Guide: docs/onboarding.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"

namespace telegate::gateway {

// One version of a device type, compiled. Immutable once published; shared by snapshots.
struct DeviceTypeVersion {
  DeviceTypeDefinition definition;
  std::uint64_t version = 0;
  bool from_config_file = false;   // managed by the file (GitOps), not by the admin API
  std::int64_t created_ms = 0;
  std::string definition_json;     // as the API shows and the store keeps it
  std::shared_ptr<const codecs::CodecPlan> codec;
  envelope::TopicTemplate topic;
  codecs::ValidationLimits validation;
};

// An immutable view of every active device type and device. Lifecycle: built by the
// CatalogManager under its lock, then shared read-only by any thread through shared_ptr.
class Catalog {
 public:
  std::uint64_t generation() const noexcept { return generation_; }
  const DeviceTypeVersion* device_type(std::string_view name) const;
  std::shared_ptr<const DeviceTypeVersion> device_type_shared(std::string_view name) const;
  const DeviceTypeVersion* by_http_path(std::string_view path) const;
  const DeviceTypeVersion* by_coap_path(std::string_view path) const;
  const DeviceRegistry& devices() const noexcept { return devices_; }
  std::size_t device_type_count() const noexcept { return types_.size(); }

 private:
  friend class CatalogManager;
  std::uint64_t generation_ = 0;
  std::map<std::string, std::shared_ptr<const DeviceTypeVersion>, std::less<>> types_;
  std::map<std::string, std::string, std::less<>> http_paths_;  // path → device type
  std::map<std::string, std::string, std::less<>> coap_paths_;  // path → device type
  DeviceRegistry devices_;
};

// One entry of the catalog's log. Keys: "device-type/<name>/<version>" (value: the definition
// as JSON, or {"deleted":true}) and "device/<tenant>/<id>" (value: the device as JSON; no value
// deletes it, which is also what Kafka's compaction keeps).
struct CatalogChange {
  std::string key;
  std::optional<std::string> value;
};

// Where catalog changes are kept. Lifecycle: created at start-up, used by the CatalogManager
// under its lock; watch() callbacks run on the store's own thread.
class CatalogStore {
 public:
  virtual ~CatalogStore() = default;
  virtual std::string describe() const = 0;
  // Every change so far, oldest first. Throws at start-up if the store cannot be read.
  virtual std::vector<CatalogChange> load() = 0;
  // Durable when it returns success: another replica, or this one after a restart, will see it.
  virtual std::expected<void, std::string> append(const CatalogChange& change) = 0;
  // Changes appended by other replicas after load(), in order; called on the store's thread.
  virtual void watch(std::function<void(const CatalogChange&)> apply) { (void)apply; }
};

std::unique_ptr<CatalogStore> make_file_catalog_store(std::filesystem::path file);
std::unique_ptr<CatalogStore> make_kafka_catalog_store(const GatewayConfig& config);
std::unique_ptr<CatalogStore> make_catalog_store(const GatewayConfig& config);

// Why an admin request was refused: the HTTP status and a stable error code for clients.
struct AdminError {
  int status;
  std::string code;
  std::string message;
};
using AdminResult = std::expected<std::string, AdminError>;  // a JSON document

// Lifecycle: one per gateway, created at start-up; admin methods may be called from any thread
// (serialized by a mutex), current() from every listener thread (lock-free read).
class CatalogManager {
 public:
  // Loads the config file's device types and devices, then every change in the store. Throws
  // at start-up when the store cannot be read.
  CatalogManager(const GatewayConfig& config, const codecs::CodecRegistry& codecs, std::unique_ptr<CatalogStore> store);
  ~CatalogManager();

  std::shared_ptr<const Catalog> current() const noexcept { return current_.load(std::memory_order_acquire); }

  // The admin API (gateway/src/admin_api.cpp maps HTTP onto these). Bodies are JSON or YAML.
  AdminResult list_device_types() const;
  AdminResult get_device_type(std::string_view name, std::optional<std::uint64_t> version) const;
  AdminResult put_device_type(std::string_view name, std::string_view body, bool dry_run);
  AdminResult delete_device_type(std::string_view name);
  AdminResult rollback_device_type(std::string_view name);
  AdminResult dry_run(std::string_view name, std::string_view content_type, std::string_view body) const;
  AdminResult list_devices() const;
  AdminResult put_device(std::string_view tenant, std::string_view id, std::string_view body);
  AdminResult delete_device(std::string_view tenant, std::string_view id);

 private:
  struct TypeHistory;
  struct StoredDevice;

  std::expected<std::shared_ptr<const DeviceTypeVersion>, AdminError> compile(const DeviceTypeDefinition& definition,
                                                                              std::uint64_t version,
                                                                              bool from_config_file) const;
  // Applies one stored change to the history (no publish); false if it was not understood.
  bool apply_locked(const CatalogChange& change, bool from_other_replica);
  void publish_locked();
  AdminResult write_locked(const CatalogChange& change);

  const GatewayConfig& config_;
  const codecs::CodecRegistry& codecs_;
  std::unique_ptr<CatalogStore> store_;
  mutable std::mutex mutex_;
  std::map<std::string, TypeHistory, std::less<>> types_;
  std::map<std::string, StoredDevice, std::less<>> devices_;  // key: tenant/id
  std::uint64_t generation_ = 0;
  std::atomic<std::shared_ptr<const Catalog>> current_;
};

// Runs a definition's samples against its compiled version: "" when all pass, else the first
// failure, naming the sample and the field.
std::string check_samples(const std::shared_ptr<const DeviceTypeVersion>& type, std::string_view gateway_id);

}  // namespace telegate::gateway
