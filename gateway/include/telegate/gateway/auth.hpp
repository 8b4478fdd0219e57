// Device authentication: bearer token → (tenant, device, device type).
//
// Tokens are stored as SHA-256 digests and compared in constant time, so neither the config
// file nor a timing side channel gives a token away. Built once at start-up from the config,
// read-only afterwards (safe from every listener thread).
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
  explicit DeviceRegistry(const GatewayConfig& config);
  // nullptr when the token matches no provisioned device. The pointer lives as long as the registry.
  const DeviceIdentity* authenticate(std::string_view bearer_token) const;
  std::size_t size() const noexcept { return by_digest_.size(); }

 private:
  std::unordered_map<std::string, DeviceIdentity> by_digest_;  // key: raw 32-byte digest
};

std::string sha256_hex(std::string_view data);

}  // namespace telegate::gateway
