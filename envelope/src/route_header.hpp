// The `tg-route` header in two halves, so EnvelopeBuilder can keep the first (constant for a
// tenant and device type) across records and write only the per-record rest.
#pragma once

#include <string>
#include <string_view>

#include "telegate/envelope/envelope.hpp"

namespace telegate::envelope {

// "v=1&t=<tenant>&dt=<device type>&mt=" appended to `out`.
void append_route_prefix(std::string& out, std::uint32_t version, std::string_view tenant, std::string_view device_type);

// "<message type>&et=<event time>&id=<msg id>&f=<format>" appended to `out`.
void append_route_rest(std::string& out, codecs::MessageType type, std::int64_t event_time_ms, std::string_view msg_id,
                       Format format);

}  // namespace telegate::envelope
