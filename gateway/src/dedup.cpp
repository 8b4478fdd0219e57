#include "telegate/gateway/dedup.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace telegate::gateway {

namespace {

constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;
// SplitMix64's finaliser: spreads FNV's weak low bits, which pick the bucket.
std::uint64_t mix(std::uint64_t value) noexcept {
  value ^= value >> 30;
  value *= 0xbf58476d1ce4e5b9ull;
  value ^= value >> 27;
  value *= 0x94d049bb133111ebull;
  return value ^ (value >> 31);
}

}  // namespace

// FNV-1a over the three fields, each followed by a separator that cannot occur inside an id
// (ids are printable ASCII without spaces), seeded two ways for the two halves of the key. Both
// halves are computed in one pass: FNV is one multiply chain per byte, so two chains side by
// side cost about what one does, where hashing the key twice (one half after the other) cost
// two. The values are the ones journals have always held.
DedupWindow::Key DedupWindow::key(std::string_view tenant, std::string_view device_id, std::string_view msg_id) noexcept {
  std::uint64_t first = 0xcbf29ce484222325ull;
  std::uint64_t second = 0x84222325cbf29ce4ull;
  for (const std::string_view part : {tenant, device_id, msg_id}) {
    second ^= 0x9e3779b97f4a7c15ull;
    for (const char c : part) {
      first = (first ^ static_cast<unsigned char>(c)) * kFnvPrime;
      second = (second ^ static_cast<unsigned char>(c)) * kFnvPrime;
    }
    first = (first ^ 0x1f) * kFnvPrime;  // unit separator
    second = (second ^ 0x1f) * kFnvPrime;
  }
  return Key{mix(first), mix(second)};
}

DedupWindow::DedupWindow(std::size_t max_entries, std::chrono::seconds max_age)
    : max_entries_per_shard_((max_entries + kShards - 1) / kShards), max_age_(max_age) {}

DedupWindow::Seen DedupWindow::reserve(const Key& key, Clock::time_point now) {
  Seen seen = Seen::no;
  reserve_all({&key, 1}, now, {&seen, 1});
  return seen;
}

// Each shard that `keys` touch is locked once; its table is made ready for all of them, their
// home slots are prefetched together, then visited in order. A request's keys fall in random
// places of a table far larger than the cache: one key after the other, each costs a full
// memory latency; prefetched together, the misses overlap.
template <class Prepare, class Visit>
void DedupWindow::by_shard(std::span<const Key> keys, Prepare&& prepare, Visit&& visit) {
  std::array<std::uint32_t, kShards> counts{};
  for (const Key& key : keys) ++counts[shard_index(key)];
  for (std::size_t index = 0; index < kShards; ++index) {
    if (counts[index] == 0) continue;
    Shard& shard = shards_[index];
    const std::lock_guard lock(shard.mutex);
    prepare(shard, counts[index]);
    if (shard.slots.empty()) continue;
    const std::size_t mask = shard.slots.size() - 1;
    for (const Key& key : keys) {
      if (shard_index(key) == index) __builtin_prefetch(&shard.slots[key.low & mask]);
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (shard_index(keys[i]) == index) visit(shard, i);
    }
  }
}

void DedupWindow::reserve_all(std::span<const Key> keys, Clock::time_point now, std::span<Seen> seen) {
  if (!enabled()) {
    std::ranges::fill(seen, Seen::no);
    return;
  }
  const auto prepare = [&](Shard& shard, std::size_t incoming) {
    evict(shard, now, incoming);
    while ((shard.size + incoming) * 2 > shard.slots.size()) grow(shard);
  };
  by_shard(keys, prepare, [&](Shard& shard, std::size_t i) {
    std::size_t free_slot = kNone;
    const std::size_t found = find(shard, keys[i], &free_slot);
    if (found != kNone) {
      seen[i] = shard.slots[found].state() == State::committed ? Seen::committed : Seen::in_flight;
      return;
    }
    shard.slots[free_slot] = Slot{keys[i], Slot::stamp_of(now, State::in_flight)};
    ++shard.size;
    shard.order.emplace_back(keys[i], now);
    seen[i] = Seen::no;
  });
}

void DedupWindow::settle(const std::vector<Key>& keys, bool committed) {
  by_shard(keys, [](Shard&, std::size_t) {}, [&](Shard& shard, std::size_t i) {
    const std::size_t found = find(shard, keys[i]);
    if (found == kNone) return;  // evicted while in flight: nothing to settle
    if (committed) {
      shard.slots[found].stamp |= static_cast<std::uint64_t>(State::committed);
    } else {
      erase(shard, found);  // its entry in `order` is skipped when it comes up
    }
  });
}

// Oldest first: entries past the age limit, then as many as needed to respect the size limit.
// An in-flight entry that is evicted only loses de-duplication of a retry racing its original.
void DedupWindow::evict(Shard& shard, Clock::time_point now, std::size_t incoming) {
  while (!shard.order.empty()) {
    const auto& [key, inserted_at] = shard.order.front();
    const bool too_old = now - inserted_at > max_age_;
    const bool too_many = shard.size + incoming > max_entries_per_shard_;
    if (!too_old && !too_many) break;
    const std::size_t found = find(shard, key);
    if (found != kNone && shard.slots[found].since() == inserted_at) erase(shard, found);
    shard.order.pop_front();
  }
}

std::size_t DedupWindow::find(const Shard& shard, const Key& key, std::size_t* free_slot) noexcept {
  if (shard.slots.empty()) return kNone;
  const std::size_t mask = shard.slots.size() - 1;
  for (std::size_t at = key.low & mask;; at = (at + 1) & mask) {  // key.low is well mixed
    const Slot& slot = shard.slots[at];
    if (slot.empty()) {
      if (free_slot) *free_slot = at;
      return kNone;
    }
    if (slot.key == key) return at;
  }
}

// Backward-shift deletion: later slots of the probe run move up, so no tombstones accumulate.
void DedupWindow::erase(Shard& shard, std::size_t at) noexcept {
  const std::size_t mask = shard.slots.size() - 1;
  for (std::size_t next = (at + 1) & mask; !shard.slots[next].empty(); next = (next + 1) & mask) {
    const std::size_t home = shard.slots[next].key.low & mask;
    // The entry at `next` may fill the hole at `at` unless its home lies cyclically in (at, next].
    const bool stays = at <= next ? (home > at && home <= next) : (home > at || home <= next);
    if (!stays) {
      shard.slots[at] = shard.slots[next];
      at = next;
    }
  }
  shard.slots[at].stamp = 0;
  --shard.size;
}

void DedupWindow::grow(Shard& shard) {
  const std::size_t capacity = std::max<std::size_t>(64, shard.slots.size() * 2);
  std::vector<Slot> old = std::exchange(shard.slots, std::vector<Slot>(capacity));
  shard.size = 0;
  for (const Slot& slot : old) {
    if (slot.empty()) continue;
    std::size_t free_slot = kNone;
    find(shard, slot.key, &free_slot);
    shard.slots[free_slot] = slot;
    ++shard.size;
  }
}

void DedupWindow::restore(const std::vector<Key>& keys) {
  for (const Key& key : keys) {
    if (reserve(key) == Seen::no) settle({key}, true);
  }
}

void DedupWindow::append_journal(const std::vector<Key>& keys, std::string& out) {
  out.reserve(out.size() + keys.size() * 16);
  for (const Key& key : keys) {
    for (const std::uint64_t half : {key.high, key.low}) {
      for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<char>((half >> shift) & 0xff));
    }
  }
}

std::vector<DedupWindow::Key> DedupWindow::parse_journal(std::string_view journal) {
  std::vector<Key> keys;
  keys.reserve(journal.size() / 16);
  auto read_half = [&](std::size_t at) {
    std::uint64_t half = 0;
    for (int byte = 7; byte >= 0; --byte) half = half << 8 | static_cast<unsigned char>(journal[at + static_cast<std::size_t>(byte)]);
    return half;
  };
  for (std::size_t at = 0; at + 16 <= journal.size(); at += 16) keys.push_back(Key{read_half(at), read_half(at + 8)});
  return keys;
}

std::size_t DedupWindow::size() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    const std::lock_guard lock(shard.mutex);
    total += shard.size;
  }
  return total;
}

}  // namespace telegate::gateway
