// The admin API: /admin/v1/device-types…, /admin/v1/devices… and /admin/v1/stats over the HTTP
// listener.
//
// Transport-free so it can be tested without sockets: the listener hands over the request and
// writes back the reply. Authenticated by the admin bearer token (admin.token_sha256); when no
// token is configured the API is off. Reference: docs/onboarding.md.
#pragma once

#include <string>
#include <string_view>

#include "telegate/gateway/catalog.hpp"
#include "telegate/gateway/metrics.hpp"

namespace telegate::gateway {

struct AdminRequest {
  std::string_view method;  // GET, PUT, POST, DELETE
  std::string_view target;  // path and query, e.g. /admin/v1/device-types/acme?dry_run=true
  std::string_view authorization;
  std::string_view content_type;
  std::string_view body;
};

struct AdminReply {
  int status = 200;
  std::string body;  // JSON
};

// Control plane: may block on the catalog store (up to its write timeout); call it off the
// listener's I/O threads.
// GET /admin/v1/stats answers from `metrics` (the per-tenant counters); 404 without it.
AdminReply handle_admin_request(CatalogManager& catalog, const AdminConfig& config, const AdminRequest& request,
                                Metrics* metrics = nullptr);

}  // namespace telegate::gateway
