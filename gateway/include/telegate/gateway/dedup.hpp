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
#include <string>
#include <string_view>
#include <unordered_map>
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

  // Marks `key` in flight unless the window holds it already; returns what it held.
  Seen reserve(const Key& key);
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
  using Clock = std::chrono::steady_clock;
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept { return static_cast<std::size_t>(key.low); }
  };
  struct Entry {
    bool committed = false;
    Clock::time_point since;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<Key, Entry, KeyHash> entries;
    std::deque<std::pair<Key, Clock::time_point>> order;  // oldest first, for eviction
  };
  static constexpr std::size_t kShards = 16;

  Shard& shard_of(const Key& key) noexcept { return shards_[key.high % kShards]; }
  void evict(Shard& shard, Clock::time_point now);

  std::size_t max_entries_per_shard_;
  std::chrono::seconds max_age_;
  std::array<Shard, kShards> shards_;
};

}  // namespace telegate::gateway
