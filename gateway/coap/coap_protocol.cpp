#include "coap/coap_protocol.hpp"

#include <algorithm>
#include <iterator>

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

std::optional<Block1> decode_block1(std::uint32_t value) noexcept {
  const auto szx = static_cast<std::uint8_t>(value & 7);
  if (szx == 7 || value > 0xffffff) return std::nullopt;
  return Block1{value >> 4, (value & 8) != 0, szx};
}

void Block1Transfers::erase(std::unordered_map<std::string, Transfer>::iterator at) {
  bytes_ -= at->second.accounted;
  const auto owner = per_endpoint_.find(at->second.endpoint);
  if (owner != per_endpoint_.end() && --owner->second == 0) per_endpoint_.erase(owner);
  transfers_.erase(at);
}

void Block1Transfers::expire(Clock::time_point now) {
  if (now < next_scan_) return;  // a scan per second at most: the table may be large
  next_scan_ = now + std::chrono::seconds(1);
  for (auto at = transfers_.begin(); at != transfers_.end();) {
    const auto next = std::next(at);
    if (at->second.last_seen + limits_.idle_timeout <= now) erase(at);
    at = next;
  }
}

BlockResult Block1Transfers::add(std::string_view endpoint, std::string_view request, Block1 block,
                                 std::optional<std::size_t> size1, std::string_view payload, Clock::time_point now) {
  expire(now);
  std::string key;
  key.reserve(endpoint.size() + 1 + request.size());
  key.append(endpoint).push_back('\0');
  key.append(request);
  auto found = transfers_.find(key);

  if (block.num == 0) {
    // A new transfer (or the client starting over): whatever was stored under the key is void.
    if (found != transfers_.end()) erase(found);
    found = transfers_.end();
    if ((size1 && *size1 > limits_.max_body_bytes) || payload.size() > limits_.max_body_bytes) {
      return {BlockVerdict::too_large, {}};
    }
    if (!block.more) return {BlockVerdict::complete, std::string(payload)};  // the whole body in one block
    if (payload.size() != block.size()) return {BlockVerdict::bad_block, {}};
    const auto owner = per_endpoint_.find(std::string(endpoint));
    if (transfers_.size() >= limits_.max_transfers ||
        (owner != per_endpoint_.end() && owner->second >= kPerEndpoint)) {
      return {BlockVerdict::busy, {}};
    }
    // Room for the announced size when there is one (never more than the limit), else for a few
    // blocks; the buffer then grows geometrically, capped at the limit.
    const std::size_t initial = std::min(limits_.max_body_bytes, size1 ? std::max(*size1, payload.size()) : 4 * block.size());
    if (bytes_ + initial > limits_.max_total_bytes) return {BlockVerdict::busy, {}};
    Transfer transfer{std::string(endpoint), {}, 0, now};
    transfer.body.reserve(initial);
    transfer.body.append(payload);
    transfer.accounted = transfer.body.capacity();
    bytes_ += transfer.accounted;
    transfers_.emplace(std::move(key), std::move(transfer));
    ++per_endpoint_[std::string(endpoint)];
    return {BlockVerdict::next, {}};
  }

  if (found == transfers_.end()) return {BlockVerdict::incomplete, {}};
  Transfer& transfer = found->second;
  if (block.offset() != transfer.body.size()) {  // a gap or a block from an older attempt
    erase(found);
    return {BlockVerdict::incomplete, {}};
  }
  if (block.more && payload.size() != block.size()) {
    erase(found);
    return {BlockVerdict::bad_block, {}};
  }
  const std::size_t needed = transfer.body.size() + payload.size();
  if (needed > limits_.max_body_bytes || (size1 && *size1 > limits_.max_body_bytes)) {
    erase(found);
    return {BlockVerdict::too_large, {}};
  }
  if (needed > transfer.body.capacity()) {
    const std::size_t grown = std::min(limits_.max_body_bytes, std::max(needed, 2 * transfer.body.capacity()));
    if (bytes_ - transfer.accounted + grown > limits_.max_total_bytes) {
      erase(found);
      return {BlockVerdict::busy, {}};
    }
    transfer.body.reserve(grown);
    bytes_ = bytes_ - transfer.accounted + transfer.body.capacity();
    transfer.accounted = transfer.body.capacity();
  }
  transfer.body.append(payload);
  transfer.last_seen = now;
  if (block.more) return {BlockVerdict::next, {}};
  BlockResult done{BlockVerdict::complete, std::move(transfer.body)};
  erase(found);
  return done;
}

}  // namespace telegate::gateway::coap
