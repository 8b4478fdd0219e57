#include "coap/coap_protocol.hpp"

namespace telegate::gateway::coap {

std::optional<std::string_view> media_type_for(std::uint32_t content_format) noexcept {
  switch (content_format) {
    case 50: return "application/json";
    case 60: return "application/cbor";
    case 110: return "application/senml+json";
    case 112: return "application/senml+cbor";
    case 42: return "application/x-protobuf";
    default: return std::nullopt;
  }
}

std::string_view supported_content_formats() noexcept {
  return "50 (json), 60 (cbor), 110 (senml+json), 112 (senml+cbor), 42 (octet-stream = telegate protobuf)";
}

std::string_view query_token(std::string_view query) noexcept {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (item.starts_with("t=")) return item.substr(2);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

RecentMessages::RecentMessages(std::size_t max_entries, std::chrono::seconds lifetime)
    : max_entries_(max_entries == 0 ? 1 : max_entries), lifetime_(lifetime) {}

std::string RecentMessages::key(std::string_view endpoint, std::uint16_t message_id) {
  std::string key;
  key.reserve(endpoint.size() + 2);
  key += static_cast<char>(message_id >> 8);
  key += static_cast<char>(message_id & 0xff);
  key += endpoint;
  return key;
}

void RecentMessages::expire(Clock::time_point now) {
  while (!order_.empty() && (order_.front().first + lifetime_ <= now || answers_.size() > max_entries_)) {
    answers_.erase(order_.front().second);
    order_.pop_front();
  }
}

RecentAnswer* RecentMessages::find(const std::string& key, Clock::time_point now) {
  expire(now);
  const auto found = answers_.find(key);
  return found == answers_.end() ? nullptr : &found->second;
}

RecentAnswer& RecentMessages::insert(const std::string& key, Clock::time_point now) {
  expire(now);
  const auto [entry, inserted] = answers_.insert_or_assign(key, RecentAnswer{});
  if (inserted) order_.emplace_back(now, key);
  if (answers_.size() > max_entries_) {
    // Evict the oldest other entries; the new one stays (it is at the back of order_).
    while (answers_.size() > max_entries_ && order_.size() > 1) {
      answers_.erase(order_.front().second);
      order_.pop_front();
    }
  }
  return entry->second;
}

}  // namespace telegate::gateway::coap
