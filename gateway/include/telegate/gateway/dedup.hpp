// De-duplication of device retries by (tenant, device, msg_id).
//
// A device that did not hear its ack (timeout, dropped connection, a reconnect) resends the
// same records with the same msg_ids. The window remembers the msg_ids of records being
// written (in flight) and recently committed, so the pipeline writes each once: a retry of a
// committed record is acknowledged without writing it again; a retry of one still in flight
// is told to come back (its first copy may yet fail). Only device-supplied msg_ids count —
// generated ones are unique by construction. What it covers and what it does not (restarts,
// other replicas): docs/reliability.md.
//
// Bounded by entries and age, coarsely: each shard keeps two tables, `current` (where keys
// enter) and `previous`, whose slots of one index lie side by side (one lookup's cache lines
// serve both), and forgets a whole table at once. A committed key is remembered while fewer
// than max_entries later keys have entered (counted per shard: max_entries / kShards of its
// own) and it is younger than max_age, and up to about twice each; a key in flight is never
// forgotten (it moves into the new table).
// Rotating whole tables spares each insertion the lookup of the entry it pushes out, a random
// cache miss at steady state (docs/benchmarks.md §20.dedup-rotate).
//
// Lifecycle: one per gateway, built at start-up; used from every listener thread (reserve) and
// sink thread (settle). Sharded so that threads rarely share a lock.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::gateway {

class DedupWindow {
 public:
  // 128 bits of two independent hashes: a false match (a new record taken for a duplicate and
  // dropped) needs a 128-bit collision, not a 64-bit one.
  struct Key {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    bool operator==(const Key&) const = default;
  };
  // The keys of one device's msg_ids. The hash of tenant and device is taken once, so a
  // request's records each hash only their msg_id; the values are those of key() (journals
  // hold them).
  class KeyHasher {
   public:
    KeyHasher(std::string_view tenant, std::string_view device_id) noexcept;
    Key operator()(std::string_view msg_id) const noexcept;
    // keys[i] = (*this)(msg_ids[i]) (keys.size() == msg_ids.size()), four msg_ids at a time:
    // one FNV chain is a multiply's latency per byte, so eight chains side by side keep the
    // multiplier busy where two left it idle most cycles. Same values.
    void operator()(std::span<const std::string_view> msg_ids, std::span<Key> keys) const noexcept;

   private:
    std::uint64_t first_;
    std::uint64_t second_;
  };
  static Key key(std::string_view tenant, std::string_view device_id, std::string_view msg_id) noexcept {
    return KeyHasher(tenant, device_id)(msg_id);
  }

  enum class Seen : std::uint8_t { no, in_flight, committed };

  // What one reserve_all() took: the keys it marked in flight, under one generation. Settling
  // the reservation settles them all; a commit is one change of the generation's state, not a
  // write per key. Owned by the request that reserved, until its batch settles.
  struct Reservation {
    std::uint64_t generation = 0;  // 0: nothing reserved (nothing to settle)
    std::vector<Key> keys;
  };

  // max_entries == 0 turns de-duplication off (every reserve() says no).
  DedupWindow(std::size_t max_entries, std::chrono::seconds max_age);

  using Clock = std::chrono::steady_clock;
  // reserve() for every key of one request: seen[i] (seen.size() == keys.size()) is what the
  // window held for keys[i]; a key repeated in `keys` is in_flight from its second time on.
  // The keys it held nowhere are marked in flight and appended to `reserved`, which must be
  // settled once (a reservation passed again keeps its generation and gains the new keys).
  // `now`: one clock reading serves every key of a request. Locks each shard once and
  // prefetches its keys' slots together.
  void reserve_all(std::span<const Key> keys, Clock::time_point now, std::span<Seen> seen, Reservation& reserved);
  // One key: what the window held for it (reserved as for reserve_all when it held nothing).
  Seen reserve(const Key& key, Reservation& reserved, Clock::time_point now = Clock::now());
  // The write of the reserved keys succeeded (they become committed) or failed (forgotten, so
  // the device's retry is written).
  void settle(const Reservation& reserved, bool committed);

  // Committed keys recovered at start-up (from the journal written with each batch) or from
  // other replicas' journals: entered as committed unless the window holds them already.
  void restore(std::span<const Key> keys);

  // The journal: keys as 16 bytes each, appended to `out` / read back (a trailing partial key
  // is ignored).
  static void append_journal(std::span<const Key> keys, std::string& out);
  static std::vector<Key> parse_journal(std::string_view journal);

  std::size_t size() const;
  bool enabled() const noexcept { return max_entries_per_shard_ > 0; }

 private:
  // Which generations are open: reserved and not yet settled. Generations are numbered in the
  // order they open; nearly all settle within a second, so the open ones are a short run above
  // `closed_below_` (every generation below it is closed). A slot's state is its generation's:
  // in flight while open, committed once closed (a failed generation's slots are erased before
  // it closes). Its own lock, taken once per request to open and once per batch to close, and
  // only for slots of recent generations to ask: a retry of a record committed a while ago
  // reads `closed_below_` and no lock.
  class Generations {
   public:
    static constexpr std::uint64_t kEmpty = 0;     // a free slot
    static constexpr std::uint64_t kRestored = 1;  // restored keys: committed, never open
    std::uint64_t open();
    void close(std::uint64_t generation);
    bool is_open(std::uint64_t generation) const;

   private:
    mutable std::mutex mutex_;
    std::uint64_t first_ = kRestored + 1;  // open_[g - first_] for generation g
    std::deque<bool> open_;
    std::atomic<std::uint64_t> closed_below_{kRestored + 1};
  };

  // An open-addressing table (linear probing, power-of-two size, at most half full): one cache
  // miss per lookup and no allocation per key, where a node-based map cost two misses and a
  // malloc/free per record (docs/benchmarks.md §11). A slot is 24 bytes: the key and the
  // generation that reserved it (0: free).
  struct Slot {
    Key key;
    std::uint64_t generation = Generations::kEmpty;
    bool empty() const noexcept { return generation == Generations::kEmpty; }
  };
  static_assert(sizeof(Slot) == 24);
  // The two tables' slots of one index side by side, 48 bytes: a lookup probes `current`, then
  // `previous` from the same index, so the line or two that one prefetch brings serve both.
  using SlotPair = std::array<Slot, 2>;
  // One side of a shard's slot pairs: its entries' count and ages.
  struct Table {
    std::size_t size = 0;
    std::size_t carried = 0;     // keys in flight moved in when the other table was dropped
    Clock::time_point opened{};  // its first entry's insertion since it was last empty
    Clock::time_point newest{};  // its last entry's insertion
    // Keys that entered as new while it was current: what the size limit counts.
    std::size_t fresh() const noexcept { return size - std::min(size, carried); }
  };
  // A key is in at most one of the two tables: it enters `current` only when neither holds it.
  struct Shard {
    mutable std::mutex mutex;
    std::vector<SlotPair> pairs;  // grown on demand (both sides at once); kept when a table drops
    std::array<Table, 2> tables;
    std::size_t current = 0;  // the side keys enter; the other side is `previous`
    std::size_t previous() const noexcept { return current ^ 1; }
  };
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  static std::size_t shard_index(const Key& key) noexcept { return key.high % kShards; }
  // Runs prepare(shard, keys in it) then visit(shard, i) for each of its keys, shard by shard.
  template <class Prepare, class Visit>
  void by_shard(std::span<const Key> keys, Prepare&& prepare, Visit&& visit);
  // Enters `key` in `current` under `generation` unless the shard holds it; returns the slot
  // holding it, or nullptr when it entered.
  static const Slot* insert(Shard& shard, const Key& key, std::uint64_t generation, Clock::time_point now);
  // Rotates or drops tables that are due (size, age), then makes room for `incoming` new keys.
  void prepare(Shard& shard, Clock::time_point now, std::size_t incoming);
  // Forgets the keys of table `side` except those in flight, which enter `current` (after the
  // clear, when `side` is `current` itself: a rotation).
  void drop(Shard& shard, std::size_t side, Clock::time_point now);
  static void prefetch_probe(const Shard& shard, const Key& key) noexcept;
  // The index of the pair whose `side` holds `key`, or kNone; `free_slot` gets the index of the
  // empty one where it would go.
  static std::size_t find(const Shard& shard, std::size_t side, const Key& key,
                          std::size_t* free_slot = nullptr) noexcept;
  static void erase(Shard& shard, std::size_t side, std::size_t at) noexcept;
  static void reserve_room(Shard& shard, std::size_t incoming);

  std::size_t max_entries_per_shard_;
  std::chrono::seconds max_age_;
  std::array<Shard, kShards> shards_;
  Generations generations_;
};

}  // namespace telegate::gateway
