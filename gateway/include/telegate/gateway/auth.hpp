// Device authentication: bearer token → (tenant, device, device type).
//
// Tokens are stored as SHA-256 digests and compared in constant time, so neither the config
// file nor a timing side channel gives a token away. Built with each catalog snapshot (start-up
// and admin changes), read-only afterwards (safe from every listener thread).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "telegate/gateway/config.hpp"

namespace telegate::gateway {

struct DeviceIdentity {
  std::string tenant;
  std::string device_id;
  std::string device_type;
};

class DeviceRegistry {
 public:
  DeviceRegistry() = default;
  explicit DeviceRegistry(const GatewayConfig& config);
  // Start-up and catalog rebuilds only (a registry is read-only once published).
  void add(const std::string& tenant, const DeviceConfig& device);
  // nullptr when the token matches no provisioned device. The pointer lives as long as the registry.
  const DeviceIdentity* authenticate(std::string_view bearer_token) const;
  std::size_t size() const noexcept { return by_digest_.size(); }

 private:
  std::unordered_map<std::string, DeviceIdentity> by_digest_;  // key: raw 32-byte digest
};

std::string sha256_hex(std::string_view data);

}  // namespace telegate::gateway
