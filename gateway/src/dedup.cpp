#include "telegate/gateway/dedup.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
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

// FNV-1a over one field and its separator, which cannot occur inside an id (ids are printable
// ASCII without spaces), for both halves of the key. Both halves are computed in one pass: FNV
// is one multiply chain per byte, so two chains side by side cost about what one does, where
// hashing the key twice (one half after the other) cost two. In three steps (start, bytes, end)
// that the four-at-a-time hashing of msg_ids interleaves.
void start_part(std::uint64_t& second) noexcept { second ^= 0x9e3779b97f4a7c15ull; }
void hash_byte(unsigned char c, std::uint64_t& first, std::uint64_t& second) noexcept {
  first = (first ^ c) * kFnvPrime;
  second = (second ^ c) * kFnvPrime;
}
void end_part(std::uint64_t& first, std::uint64_t& second) noexcept { hash_byte(0x1f, first, second); }  // unit separator

void hash_part(std::string_view part, std::uint64_t& first, std::uint64_t& second) noexcept {
  start_part(second);
  for (const char c : part) hash_byte(static_cast<unsigned char>(c), first, second);
  end_part(first, second);
}

}  // namespace

// Tenant, device, msg_id in that order, seeded two ways for the two halves of the key: the
// values journals have always held.
DedupWindow::KeyHasher::KeyHasher(std::string_view tenant, std::string_view device_id) noexcept
    : first_(0xcbf29ce484222325ull), second_(0x84222325cbf29ce4ull) {
  hash_part(tenant, first_, second_);
  hash_part(device_id, first_, second_);
}

DedupWindow::Key DedupWindow::KeyHasher::operator()(std::string_view msg_id) const noexcept {
  std::uint64_t first = first_;
  std::uint64_t second = second_;
  hash_part(msg_id, first, second);
  return Key{mix(first), mix(second)};
}

// The bytes that all four msg_ids have (all of them, for ids of one shape such as UUIDs) are
// hashed in lockstep; each one's remainder and separator after.
void DedupWindow::KeyHasher::operator()(std::span<const std::string_view> msg_ids, std::span<Key> keys) const noexcept {
  constexpr std::size_t kLanes = 4;
  std::size_t i = 0;
  for (; i + kLanes <= msg_ids.size(); i += kLanes) {
    const std::string_view* const ids = msg_ids.data() + i;
    std::array<std::uint64_t, kLanes> first{};
    std::array<std::uint64_t, kLanes> second{};
    std::size_t common = ids[0].size();
    for (std::size_t lane = 0; lane < kLanes; ++lane) {
      first[lane] = first_;
      second[lane] = second_;
      start_part(second[lane]);
      common = std::min(common, ids[lane].size());
    }
    for (std::size_t at = 0; at < common; ++at) {
      for (std::size_t lane = 0; lane < kLanes; ++lane) {
        hash_byte(static_cast<unsigned char>(ids[lane][at]), first[lane], second[lane]);
      }
    }
    for (std::size_t lane = 0; lane < kLanes; ++lane) {
      for (const char c : ids[lane].substr(common)) hash_byte(static_cast<unsigned char>(c), first[lane], second[lane]);
      end_part(first[lane], second[lane]);
      keys[i + lane] = Key{mix(first[lane]), mix(second[lane])};
    }
  }
  for (; i < msg_ids.size(); ++i) keys[i] = (*this)(msg_ids[i]);
}

std::uint64_t DedupWindow::Generations::open() {
  const std::lock_guard lock(mutex_);
  open_.push_back(true);
  return first_ + open_.size() - 1;
}

// Closing the oldest open generation moves `closed_below_` past every closed one after it.
void DedupWindow::Generations::close(std::uint64_t generation) {
  const std::lock_guard lock(mutex_);
  if (generation < first_) return;  // closed already (a reservation settled twice)
  open_[generation - first_] = false;
  while (!open_.empty() && !open_.front()) {
    open_.pop_front();
    ++first_;
  }
  closed_below_.store(first_, std::memory_order_release);
}

bool DedupWindow::Generations::is_open(std::uint64_t generation) const {
  if (generation < closed_below_.load(std::memory_order_acquire)) return false;
  const std::lock_guard lock(mutex_);
  return generation >= first_ && open_[generation - first_];
}

DedupWindow::DedupWindow(std::size_t max_entries, std::chrono::seconds max_age)
    : max_entries_per_shard_((max_entries + kShards - 1) / kShards), max_age_(max_age) {}

// Each shard that `keys` touch is locked once; its tables are made ready for all of them, their
// home slots are prefetched together, then visited in order. A request's keys
// fall in random places of tables far larger than the cache: one key after the other, each
// costs a full memory latency; prefetched together, the misses overlap. The keys are sorted by
// shard once (a counting sort of their indices), not scanned again for each shard. (Locking
// every shard the request touches and prefetching all its slots at once measured slower at
// steady state.) A lookup reads the key's home pair of slots (the two tables' slots of an
// index lie side by side, so the same lines serve both probes) and, at a table's load (at most
// half full), often the next pair.
void DedupWindow::prefetch_probe(const Shard& shard, const Key& key) noexcept {
  if (shard.pairs.empty()) return;
  const char* home = reinterpret_cast<const char*>(&shard.pairs[key.low & (shard.pairs.size() - 1)]);
  __builtin_prefetch(home);
  __builtin_prefetch(home + 2 * sizeof(SlotPair) - 1);
}

template <class Prepare, class Visit>
void DedupWindow::by_shard(std::span<const Key> keys, Prepare&& prepare, Visit&& visit) {
  std::array<std::uint32_t, kShards + 1> starts{};
  for (const Key& key : keys) ++starts[shard_index(key) + 1];
  for (std::size_t index = 1; index <= kShards; ++index) starts[index] += starts[index - 1];
  std::vector<std::uint32_t> sorted(keys.size());
  std::array<std::uint32_t, kShards> next{};
  std::copy_n(starts.begin(), kShards, next.begin());
  for (std::size_t i = 0; i < keys.size(); ++i) sorted[next[shard_index(keys[i])]++] = static_cast<std::uint32_t>(i);
  for (std::size_t index = 0; index < kShards; ++index) {
    const std::span<const std::uint32_t> mine(sorted.data() + starts[index], starts[index + 1] - starts[index]);
    if (mine.empty()) continue;
    Shard& shard = shards_[index];
    const std::lock_guard lock(shard.mutex);
    prepare(shard, mine.size());
    for (const std::uint32_t i : mine) prefetch_probe(shard, keys[i]);
    for (const std::uint32_t i : mine) visit(shard, i);
  }
}

// `current` becomes `previous` once it holds more than max_entries_per_shard_ new keys, or once
// its first entry is older than max_age_; the table `previous` was is dropped and reused as the
// new `current`. A key in `previous` has then seen more than that many later keys enter, or
// that much time pass: a key is still found after exactly max_entries_per_shard_ later keys.
// `previous` alone is dropped once even its newest entry is older than max_age_ (a shard that
// saw no key for a while). The limits are checked once per request and shard, so `current` may
// pass the size limit by the request's keys: never fewer later keys before a key is forgotten.
void DedupWindow::prepare(Shard& shard, Clock::time_point now, std::size_t incoming) {
  const Table& current = shard.tables[shard.current];
  if (current.size > 0 && (current.fresh() > max_entries_per_shard_ || now - current.opened > max_age_)) {
    shard.current = shard.previous();
    drop(shard, shard.current, now);
  }
  const Table& previous = shard.tables[shard.previous()];
  if (previous.size > 0 && now - previous.newest > max_age_) drop(shard, shard.previous(), now);
  reserve_room(shard, incoming);
}

// One pass over the dropped table's slots finds the keys in flight and clears the rest; the
// slots stay, so a window that has filled once allocates no more. The keys in flight are few
// (batches settle within a second, a table spans max_entries keys), but they must survive:
// forgetting one would let its retry be written while the first copy may still commit.
void DedupWindow::drop(Shard& shard, std::size_t side, Clock::time_point now) {
  std::vector<Slot> in_flight;
  for (SlotPair& pair : shard.pairs) {
    Slot& slot = pair[side];
    if (slot.empty()) continue;
    if (generations_.is_open(slot.generation)) in_flight.push_back(slot);
    slot.generation = Generations::kEmpty;
  }
  shard.tables[side] = Table{};
  reserve_room(shard, in_flight.size());
  for (const Slot& slot : in_flight) insert(shard, slot.key, slot.generation, now);
  shard.tables[shard.current].carried += in_flight.size();
}

// Both sides move to the larger array: they share its indices.
void DedupWindow::reserve_room(Shard& shard, std::size_t incoming) {
  while ((shard.tables[shard.current].size + incoming) * 2 > shard.pairs.size()) {
    const std::size_t capacity = std::max<std::size_t>(64, shard.pairs.size() * 2);
    std::vector<SlotPair> old = std::exchange(shard.pairs, std::vector<SlotPair>(capacity));
    for (const SlotPair& pair : old) {
      for (std::size_t side = 0; side < pair.size(); ++side) {
        if (pair[side].empty()) continue;
        std::size_t free_slot = kNone;
        find(shard, side, pair[side].key, &free_slot);
        shard.pairs[free_slot][side] = pair[side];
      }
    }
  }
}

const DedupWindow::Slot* DedupWindow::insert(Shard& shard, const Key& key, std::uint64_t generation,
                                             Clock::time_point now) {
  std::size_t free_slot = kNone;
  if (const std::size_t found = find(shard, shard.current, key, &free_slot); found != kNone) {
    return &shard.pairs[found][shard.current];
  }
  if (shard.tables[shard.previous()].size > 0) {
    if (const std::size_t found = find(shard, shard.previous(), key); found != kNone) {
      return &shard.pairs[found][shard.previous()];
    }
  }
  shard.pairs[free_slot][shard.current] = Slot{key, generation};
  Table& current = shard.tables[shard.current];
  if (current.size++ == 0) current.opened = now;
  current.newest = now;
  return nullptr;
}

void DedupWindow::reserve_all(std::span<const Key> keys, Clock::time_point now, std::span<Seen> seen,
                              Reservation& reserved) {
  if (!enabled()) {
    std::ranges::fill(seen, Seen::no);
    return;
  }
  // A reservation that holds keys already (one request's keys reserved in parts) keeps its
  // generation: one settle covers them all.
  const bool fresh = reserved.generation == 0;
  const std::uint64_t generation = fresh ? generations_.open() : reserved.generation;
  reserved.generation = generation;
  const auto make_room = [&](Shard& shard, std::size_t incoming) { prepare(shard, now, incoming); };
  by_shard(keys, make_room, [&](Shard& shard, std::size_t i) {
    const Slot* held = insert(shard, keys[i], generation, now);
    if (held == nullptr) {
      reserved.keys.push_back(keys[i]);
      seen[i] = Seen::no;
    } else {
      seen[i] = generations_.is_open(held->generation) ? Seen::in_flight : Seen::committed;
    }
  });
  if (fresh && reserved.keys.empty()) {  // nothing to settle later
    generations_.close(generation);
    reserved.generation = 0;
  }
}

DedupWindow::Seen DedupWindow::reserve(const Key& key, Reservation& reserved, Clock::time_point now) {
  Seen seen = Seen::no;
  reserve_all({&key, 1}, now, {&seen, 1}, reserved);
  return seen;
}

// A commit touches no slot: its generation closes, and its slots read as committed from then
// on. A failure erases the slots that this generation still holds, in whichever table (not
// those reserved again by a later generation since, after a reservation settled twice), then
// closes it.
void DedupWindow::settle(const Reservation& reserved, bool committed) {
  if (reserved.generation == 0) return;
  if (!committed) {
    by_shard(reserved.keys, [](Shard&, std::size_t) {}, [&](Shard& shard, std::size_t i) {
      for (const std::size_t side : {shard.current, shard.previous()}) {
        const std::size_t found = find(shard, side, reserved.keys[i]);
        if (found == kNone) continue;
        if (shard.pairs[found][side].generation == reserved.generation) erase(shard, side, found);
        break;  // a key is in one table at most
      }
    });
  }
  generations_.close(reserved.generation);
}

void DedupWindow::restore(std::span<const Key> keys) {
  if (!enabled()) return;
  const auto now = Clock::now();
  const auto make_room = [&](Shard& shard, std::size_t incoming) { prepare(shard, now, incoming); };
  by_shard(keys, make_room,
           [&](Shard& shard, std::size_t i) { insert(shard, keys[i], Generations::kRestored, now); });
}

std::size_t DedupWindow::find(const Shard& shard, std::size_t side, const Key& key,
                              std::size_t* free_slot) noexcept {
  if (shard.pairs.empty()) return kNone;
  const std::size_t mask = shard.pairs.size() - 1;
  for (std::size_t at = key.low & mask;; at = (at + 1) & mask) {  // key.low is well mixed
    const Slot& slot = shard.pairs[at][side];
    if (slot.empty()) {
      if (free_slot) *free_slot = at;
      return kNone;
    }
    if (slot.key == key) return at;
  }
}

// Backward-shift deletion: later slots of the probe run move up, so no tombstones accumulate.
void DedupWindow::erase(Shard& shard, std::size_t side, std::size_t at) noexcept {
  const std::size_t mask = shard.pairs.size() - 1;
  const auto slot = [&](std::size_t index) -> Slot& { return shard.pairs[index][side]; };
  for (std::size_t next = (at + 1) & mask; !slot(next).empty(); next = (next + 1) & mask) {
    const std::size_t home = slot(next).key.low & mask;
    // The entry at `next` may fill the hole at `at` unless its home lies cyclically in (at, next].
    const bool stays = at <= next ? (home > at && home <= next) : (home > at || home <= next);
    if (!stays) {
      slot(at) = slot(next);
      at = next;
    }
  }
  slot(at).generation = Generations::kEmpty;
  --shard.tables[side].size;
}

// The journal's format: each key as its two halves, high then low, little-endian. On a
// little-endian host that is the key's own bytes, copied in one go rather than byte by byte.
static_assert(std::endian::native == std::endian::little && sizeof(DedupWindow::Key) == 16,
              "the journal's byte order is the host's: a big-endian host needs a byte swap here");

void DedupWindow::append_journal(std::span<const Key> keys, std::string& out) {
  const std::size_t at = out.size();
  out.resize(at + keys.size_bytes());
  if (!keys.empty()) std::memcpy(out.data() + at, keys.data(), keys.size_bytes());
}

std::vector<DedupWindow::Key> DedupWindow::parse_journal(std::string_view journal) {
  std::vector<Key> keys(journal.size() / sizeof(Key));
  if (!keys.empty()) std::memcpy(keys.data(), journal.data(), keys.size() * sizeof(Key));
  return keys;
}

std::size_t DedupWindow::size() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    const std::lock_guard lock(shard.mutex);
    total += shard.tables[0].size + shard.tables[1].size;
  }
  return total;
}

}  // namespace telegate::gateway
