#include "telegate/gateway/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <array>
#include <stdexcept>

namespace telegate::gateway {

namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

// SHA-256 of `data`. The algorithm is fetched once and every thread keeps one context:
// EVP_Digest(…, EVP_sha256(), …) looks the algorithm up in OpenSSL 3's provider store and
// allocates a fresh context on every call, which cost ~4 µs per HTTP request with the library's
// code and tables cold (docs/benchmarks.md §18.clock).
Digest digest_of(std::string_view data) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local const Context context;
  Digest digest{};
  unsigned int length = 0;
  if (sha256 == nullptr || context.ctx == nullptr || EVP_DigestInit_ex2(context.ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(context.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.ctx, digest.data(), &length) != 1) {
    throw std::runtime_error("OpenSSL SHA-256 failed");
  }
  return digest;
}

std::string_view as_chars(const Digest& digest) noexcept {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::string hex_to_bytes(std::string_view hex) {
  std::string bytes(hex.size() / 2, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return bytes;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(SHA256_DIGEST_LENGTH * 2);
  for (const unsigned char value : digest_of(data)) {
    hex += kDigits[value >> 4];
    hex += kDigits[value & 0x0f];
  }
  return hex;
}

DeviceRegistry::DeviceRegistry(const GatewayConfig& config) {
  for (const TenantConfig& tenant : config.tenants) {
    for (const DeviceConfig& device : tenant.devices) add(tenant.name, device);
  }
}

void DeviceRegistry::add(const std::string& tenant, const DeviceConfig& device) {
  const auto [entry, inserted] =
      by_digest_.insert_or_assign(hex_to_bytes(device.token_sha256), DeviceIdentity{tenant, device.id, device.device_type});
  (void)inserted;
  const Entry* node = &*entry;
  by_qualified_id_.insert_or_assign(tenant + "/" + device.id, node);
  const auto [bare, first] = by_bare_id_.try_emplace(device.id, node);
  if (!first && bare->second != node && (!bare->second || bare->second->second.tenant != tenant)) bare->second = nullptr;
}

std::optional<DeviceRegistry::PskEntry> DeviceRegistry::by_psk_identity(std::string_view identity) const {
  if (identity.empty()) return std::nullopt;
  const std::string key(identity);
  const auto qualified = by_qualified_id_.find(key);
  const auto bare = by_bare_id_.find(key);
  const Entry* entry = qualified != by_qualified_id_.end() ? qualified->second : nullptr;
  if (bare != by_bare_id_.end()) {
    // A bare id that reads like another tenant's "<tenant>/<id>" is ambiguous too.
    if (entry || bare->second == nullptr) return std::nullopt;
    entry = bare->second;
  }
  if (entry == nullptr) return std::nullopt;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(entry->first.size() * 2);
  for (const char byte : entry->first) {
    const auto value = static_cast<unsigned char>(byte);
    hex += kDigits[value >> 4];
    hex += kDigits[value & 0x0f];
  }
  return PskEntry{&entry->second, std::move(hex)};
}

const DeviceIdentity* DeviceRegistry::find(std::string_view tenant, std::string_view device_id) const {
  std::string key;
  key.reserve(tenant.size() + 1 + device_id.size());
  key.append(tenant).append(1, '/').append(device_id);
  const auto found = by_qualified_id_.find(key);
  return found == by_qualified_id_.end() ? nullptr : &found->second->second;
}

// The map is keyed by the token's SHA-256, so lookup timing depends only on the digest, which
// reveals nothing usable about the token; the final comparison is constant-time regardless.
const DeviceIdentity* DeviceRegistry::authenticate(std::string_view bearer_token) const {
  if (bearer_token.empty()) return nullptr;
  const Digest digest = digest_of(bearer_token);
  const auto found = by_digest_.find(as_chars(digest));
  if (found == by_digest_.end()) return nullptr;
  if (CRYPTO_memcmp(found->first.data(), digest.data(), digest.size()) != 0) return nullptr;
  return &found->second;
}

}  // namespace telegate::gateway
