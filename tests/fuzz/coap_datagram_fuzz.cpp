// Fuzz target for what a CoAP device controls: a datagram through libcoap's PDU parser, then
// everything the listener reads from a parsed request with its own code (Uri-Path, Uri-Query
// token, Content-Format mapping, payload), and the recent-message cache keyed by its id.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coap/coap_protocol.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <coap3/coap.h>
#pragma GCC diagnostic pop

using namespace telegate::gateway;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool started = [] {
    coap_startup();
    coap_set_log_level(LOG_EMERG);
    return true;
  }();
  (void)started;
  static coap::RecentMessages recent(64);

  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, 0, size + 64);
  if (!pdu) return 0;
  if (coap_pdu_parse(COAP_PROTO_UDP, data, size, pdu)) {
    if (coap_string_t* path = coap_get_uri_path(pdu)) coap_delete_string(path);
    if (coap_string_t* query = coap_get_query(pdu)) {
      (void)coap::query_token(std::string_view(reinterpret_cast<const char*>(query->s), query->length));
      coap_delete_string(query);
    }
    coap_opt_iterator_t options;
    if (const coap_opt_t* format = coap_check_option(pdu, COAP_OPTION_CONTENT_FORMAT, &options)) {
      (void)coap::media_type_for(coap_decode_var_bytes(coap_opt_value(format), coap_opt_length(format)));
    }
    std::size_t length = 0;
    const std::uint8_t* payload = nullptr;
    std::size_t offset = 0;
    std::size_t total = 0;
    if (coap_get_data_large(pdu, &length, &payload, &offset, &total) && length > 0) {
      volatile std::uint8_t first = payload[0];
      volatile std::uint8_t last = payload[length - 1];
      (void)first;
      (void)last;
    }
    const std::string key = coap::RecentMessages::key("fuzz", static_cast<std::uint16_t>(coap_pdu_get_mid(pdu)));
    if (!recent.find(key, coap::RecentMessages::Clock::now())) recent.insert(key, coap::RecentMessages::Clock::now());
  }
  (void)coap::query_token(std::string_view(reinterpret_cast<const char*>(data), size));
  coap_delete_pdu(pdu);
  return 0;
}
