// Device authentication: bearer token → (tenant, device, device type).
//
// Tokens are stored as SHA-256 digests and compared in constant time, so neither the config
// file nor a timing side channel gives a token away. Built with each catalog snapshot (start-up
// and admin changes), read-only afterwards (safe from every listener thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
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
  // Not copyable: the identity indexes point into by_digest_'s nodes (a move keeps them).
  DeviceRegistry(const DeviceRegistry&) = delete;
  DeviceRegistry& operator=(const DeviceRegistry&) = delete;
  DeviceRegistry(DeviceRegistry&&) noexcept = default;
  DeviceRegistry& operator=(DeviceRegistry&&) noexcept = default;
  // Start-up and catalog rebuilds only (a registry is read-only once published).
  void add(const std::string& tenant, const DeviceConfig& device);
  // nullptr when the token matches no provisioned device. The pointer lives as long as the registry.
  const DeviceIdentity* authenticate(std::string_view bearer_token) const;
  std::size_t size() const noexcept { return by_digest_.size(); }

  // DTLS-PSK (CoAP): the device named by a PSK identity and its pre-shared key, which is the
  // lower-case hex SHA-256 of its token (64 ASCII characters, the token_sha256 the gateway
  // stores; the device derives it from its token). ASCII rather than the raw 32 bytes because
  // device SDKs and coap-client take keys as text. The identity is "<tenant>/<device id>", or the
  // bare device id when only one tenant has a device of that id.
  struct PskEntry {
    const DeviceIdentity* device = nullptr;  // lives as long as the registry
    std::string key;
  };
  std::optional<PskEntry> by_psk_identity(std::string_view identity) const;

  // The device provisioned as `device_id` in `tenant`, or nullptr. For transports where someone
  // else authenticated the device (the MQTT bridge trusts the broker, then checks provisioning).
  const DeviceIdentity* find(std::string_view tenant, std::string_view device_id) const;

 private:
  using Entry = std::pair<const std::string, DeviceIdentity>;
  // Looked up by a digest on the stack: no heap string per authentication.
  struct DigestHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view digest) const noexcept { return std::hash<std::string_view>{}(digest); }
  };
  std::unordered_map<std::string, DeviceIdentity, DigestHash, std::equal_to<>> by_digest_;  // key: raw 32-byte digest
  // Node pointers into by_digest_ (stable: unordered_map never moves its nodes). A bare id that
  // two tenants share maps to nullptr: ambiguous, so only "<tenant>/<id>" works for it.
  std::unordered_map<std::string, const Entry*> by_qualified_id_;  // "<tenant>/<id>"
  std::unordered_map<std::string, const Entry*> by_bare_id_;
};

std::string sha256_hex(std::string_view data);

}  // namespace telegate::gateway
