#include "admin_api.hpp"

#include <openssl/crypto.h>

#include <charconv>
#include <vector>

#include "telegate/gateway/auth.hpp"

namespace telegate::gateway {

namespace {

AdminReply error_reply(int status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":";
  envelope::append_json_string(body, code);
  body += ",\"message\":";
  envelope::append_json_string(body, message);
  body += '}';
  return {status, std::move(body)};
}

AdminReply reply(AdminResult result, int success_status = 200) {
  if (!result) return error_reply(result.error().status, result.error().code, result.error().message);
  return {success_status, std::move(*result)};
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const std::size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return parts;
}

// The value of `name` in a query string (no percent-decoding: admin parameters are plain).
std::optional<std::string_view> query_parameter(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t equals = pair.find('=');
    if (pair.substr(0, equals) == name) return equals == std::string_view::npos ? "" : pair.substr(equals + 1);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
  }
  return std::nullopt;
}

bool authorized(const AdminConfig& config, std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (!authorization.starts_with(kScheme)) return false;
  const std::string presented = sha256_hex(authorization.substr(kScheme.size()));
  return presented.size() == config.token_sha256.size() &&
         CRYPTO_memcmp(presented.data(), config.token_sha256.data(), presented.size()) == 0;
}

AdminReply method_not_allowed(std::string_view allowed) {
  return error_reply(405, "method_not_allowed", "use " + std::string(allowed));
}

AdminReply device_types(CatalogManager& catalog, const AdminRequest& request, const std::vector<std::string_view>& parts,
                        std::string_view query) {
  if (parts.size() == 3) {
    if (request.method != "GET") return method_not_allowed("GET");
    return reply(catalog.list_device_types());
  }
  const std::string_view name = parts[3];
  if (parts.size() == 4) {
    if (request.method == "GET") {
      std::optional<std::uint64_t> version;
      if (const auto text = query_parameter(query, "version")) {
        std::uint64_t parsed = 0;
        const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), parsed);
        if (ec != std::errc() || end != text->data() + text->size()) {
          return error_reply(400, "bad_request", "version must be a whole number");
        }
        version = parsed;
      }
      return reply(catalog.get_device_type(name, version));
    }
    if (request.method == "PUT") {
      const bool dry_run = query_parameter(query, "dry_run") == std::optional<std::string_view>("true");
      return reply(catalog.put_device_type(name, request.body, dry_run));
    }
    if (request.method == "DELETE") return reply(catalog.delete_device_type(name));
    return method_not_allowed("GET, PUT, DELETE");
  }
  if (parts.size() == 5 && parts[4] == "rollback") {
    if (request.method != "POST") return method_not_allowed("POST");
    return reply(catalog.rollback_device_type(name));
  }
  if (parts.size() == 5 && parts[4] == "dry-run") {
    if (request.method != "POST") return method_not_allowed("POST");
    return reply(catalog.dry_run(name, request.content_type, request.body));
  }
  return error_reply(404, "not_found", "no such admin path");
}

AdminReply devices(CatalogManager& catalog, const AdminRequest& request, const std::vector<std::string_view>& parts) {
  if (parts.size() == 3) {
    if (request.method != "GET") return method_not_allowed("GET");
    return reply(catalog.list_devices());
  }
  if (parts.size() != 5) return error_reply(404, "not_found", "devices are addressed as /admin/v1/devices/<tenant>/<id>");
  if (request.method == "PUT") return reply(catalog.put_device(parts[3], parts[4], request.body));
  if (request.method == "DELETE") return reply(catalog.delete_device(parts[3], parts[4]));
  return method_not_allowed("PUT, DELETE");
}

}  // namespace

AdminReply handle_admin_request(CatalogManager& catalog, const AdminConfig& config, const AdminRequest& request,
                                Metrics* metrics) {
  if (config.token_sha256.empty()) {
    return error_reply(404, "admin_disabled", "the admin API is off: set admin.token_sha256 to enable it");
  }
  if (!authorized(config, request.authorization)) {
    return error_reply(401, "unauthenticated", "an Authorization: Bearer <admin token> header is required");
  }
  const std::size_t question = request.target.find('?');
  const std::string_view path = request.target.substr(0, question);
  const std::string_view query = question == std::string_view::npos ? "" : request.target.substr(question + 1);
  const std::vector<std::string_view> parts = split_path(path);
  if (parts.size() >= 3 && parts[0] == "admin" && parts[1] == "v1") {
    if (parts[2] == "device-types") return device_types(catalog, request, parts, query);
    if (parts[2] == "devices") return devices(catalog, request, parts);
    if (parts.size() == 3 && parts[2] == "stats" && metrics) {
      if (request.method != "GET") return method_not_allowed("GET");
      return AdminReply{200, metrics->tenant_stats_json()};
    }
  }
  return error_reply(404, "not_found", "no such admin path: " + std::string(path.substr(0, 128)));
}

}  // namespace telegate::gateway
