// De-duplication of device retries by (tenant, device, msg_id).
//
// A device that did not hear its ack (timeout, dropped connection, a reconnect) resends the
// same records with the same msg_ids. The window remembers the msg_ids of records being
// written (in flight) and recently committed, so the pipeline writes each once: a retry of a
// committed record is acknowledged without writing it again; a retry of one still in flight
// is told to come back (its first copy may yet fail). Only device-supplied msg_ids count —
// generated ones are unique by construction. Bounded by entries and age; what it covers and
// what it does not (restarts, other replicas): docs/reliability.md.
//
// Lifecycle: one per gateway, built at start-up; used from every listener thread (reserve) and
// sink thread (settle). Sharded so that threads rarely share a lock.
#pragma once

#include <array>
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
  static Key key(std::string_view tenant, std::string_view device_id, std::string_view msg_id) noexcept;

  enum class Seen : std::uint8_t { no, in_flight, committed };

  // max_entries == 0 turns de-duplication off (every reserve() says no).
  DedupWindow(std::size_t max_entries, std::chrono::seconds max_age);

  using Clock = std::chrono::steady_clock;
  // Marks `key` in flight unless the window holds it already; returns what it held. `now`: one
  // clock reading serves every key of a request.
  Seen reserve(const Key& key, Clock::time_point now);
  Seen reserve(const Key& key) { return reserve(key, Clock::now()); }
  // reserve() for every key of one request: seen[i] (seen.size() == keys.size()) is what the
  // window held for keys[i]; a key repeated in `keys` is in_flight from its second time on.
  // Locks each shard once and prefetches its keys' slots together.
  void reserve_all(std::span<const Key> keys, Clock::time_point now, std::span<Seen> seen);
  // The write of reserved keys succeeded (they become committed) or failed (forgotten, so the
  // device's retry is written).
  void settle(const std::vector<Key>& keys, bool committed);

  // Committed keys recovered at start-up (from the journal written with each batch).
  void restore(const std::vector<Key>& keys);

  // The journal: keys as 16 bytes each, appended to `out` / read back (a trailing partial key
  // is ignored).
  static void append_journal(const std::vector<Key>& keys, std::string& out);
  static std::vector<Key> parse_journal(std::string_view journal);

  std::size_t size() const;
  bool enabled() const noexcept { return max_entries_per_shard_ > 0; }

 private:
  // An open-addressing table (linear probing, power-of-two size, at most half full): one cache
  // miss per lookup and no allocation per key, where a node-based map cost two misses and a
  // malloc/free per record (docs/benchmarks.md §11).
  // A slot is 24 bytes, not 32: the state lives in the two low bits of the insertion time
  // (steady-clock ticks shifted left by two), so more of the table fits in each cache line. A
  // stamp of 0 (state `empty`) is a free slot; committed = in_flight | 2, set by one OR.
  enum class State : std::uint8_t { empty = 0, in_flight = 1, committed = 3 };
  struct Slot {
    Key key;
    std::uint64_t stamp = 0;

    static std::uint64_t stamp_of(Clock::time_point since, State state) noexcept {
      return static_cast<std::uint64_t>(since.time_since_epoch().count()) << 2 | static_cast<std::uint64_t>(state);
    }
    bool empty() const noexcept { return stamp == 0; }
    State state() const noexcept { return static_cast<State>(stamp & 3); }
    Clock::time_point since() const noexcept {
      return Clock::time_point(Clock::duration(static_cast<Clock::rep>(stamp >> 2)));
    }
  };
  static_assert(sizeof(Slot) == 24);
  struct Shard {
    mutable std::mutex mutex;
    std::vector<Slot> slots;  // grown on demand up to twice the shard's entry limit
    std::size_t size = 0;
    std::deque<std::pair<Key, Clock::time_point>> order;  // oldest first, for eviction
  };
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  static std::size_t shard_index(const Key& key) noexcept { return key.high % kShards; }
  // Runs prepare(shard, keys in it) then visit(shard, i) for each of its keys, shard by shard.
  template <class Prepare, class Visit>
  void by_shard(std::span<const Key> keys, Prepare&& prepare, Visit&& visit);
  // Makes room for `incoming` new entries within the size limit, and drops aged ones.
  void evict(Shard& shard, Clock::time_point now, std::size_t incoming);
  // The slot holding `key`, or kNone; `free_slot` gets the empty slot where it would go.
  static std::size_t find(const Shard& shard, const Key& key, std::size_t* free_slot = nullptr) noexcept;
  static void erase(Shard& shard, std::size_t at) noexcept;
  void grow(Shard& shard);

  std::size_t max_entries_per_shard_;
  std::chrono::seconds max_age_;
  std::array<Shard, kShards> shards_;
};

}  // namespace telegate::gateway
