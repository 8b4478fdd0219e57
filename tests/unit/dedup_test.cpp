// The de-duplication window on its own: key values and journal bytes that restarts depend on,
// reserve_all() against the one-key-at-a-time reserve(), and the states that generations give
// reserved keys (in flight until their batch settles, committed or forgotten after).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/gateway/dedup.hpp"

using telegate::gateway::DedupWindow;

namespace {

DedupWindow::Key key(int i) { return DedupWindow::key("acme", "truck-" + std::to_string(i % 7), "m-" + std::to_string(i)); }

// Keys that share their high half share a shard (the window shards by it), so a test can count
// the later keys that a key's own shard sees, whatever shard that is.
DedupWindow::Key shard_key(int i) { return {0x5eed, key(i).low}; }
constexpr int kShards = 16;

// What the window holds for `k` now; a probe that reserved gives the key back.
DedupWindow::Seen look_up(DedupWindow& window, const DedupWindow::Key& k, DedupWindow::Clock::time_point now) {
  DedupWindow::Reservation probe;
  const DedupWindow::Seen seen = window.reserve(k, probe, now);
  window.settle(probe, false);
  return seen;
}
void commit(DedupWindow& window, const DedupWindow::Key& k, DedupWindow::Clock::time_point now) {
  DedupWindow::Reservation reserved;
  REQUIRE(window.reserve(k, reserved, now) == DedupWindow::Seen::no);
  window.settle(reserved, true);
}

// reserve_all() of `keys` as one request: its reservation, and what the window held for each.
struct Reserved {
  DedupWindow::Reservation reservation;
  std::vector<DedupWindow::Seen> seen;
};
Reserved reserve_request(DedupWindow& window, const std::vector<DedupWindow::Key>& keys,
                         DedupWindow::Clock::time_point now = DedupWindow::Clock::now()) {
  Reserved reserved{{}, std::vector<DedupWindow::Seen>(keys.size())};
  window.reserve_all(keys, now, reserved.seen, reserved.reservation);
  return reserved;
}

}  // namespace

TEST_CASE("keys keep the values journals were written with") {
  // Computed by the two-pass FNV-1a of earlier releases: a journal written before an upgrade
  // must still match the retries that come after it.
  struct Golden {
    const char* tenant;
    const char* device;
    const char* msg_id;
    std::uint64_t high;
    std::uint64_t low;
  };
  for (const Golden& golden : {
           Golden{"acme", "truck-1", "m-1", 0x429cb00414c93342ull, 0xb63c5ea59ec48006ull},
           Golden{"", "", "", 0xe2467eb550bd21f3ull, 0x9a9a55af0d6f36e9ull},
           Golden{"tenant-with-a-longer-name", "device-0000000042", "0190f3a4-7c2b-7d11-8e5a-3b9c1d2e4f60",
                  0xcdb6f3d2843555a9ull, 0x91a67dfed43c0848ull},
       }) {
    CAPTURE(golden.msg_id);
    const DedupWindow::Key computed = DedupWindow::key(golden.tenant, golden.device, golden.msg_id);
    CHECK(computed.high == golden.high);
    CHECK(computed.low == golden.low);
    CHECK(DedupWindow::KeyHasher(golden.tenant, golden.device)(golden.msg_id) == computed);
    CHECK(DedupWindow::parse_journal([&] {
            std::string journal;
            DedupWindow::append_journal({&computed, 1}, journal);
            return journal;
          }()) == std::vector<DedupWindow::Key>{computed});
  }
}

TEST_CASE("msg_ids hashed four at a time get the keys they get one at a time") {
  // Lengths that differ within a group of four (a common prefix, then each one's remainder),
  // empty ids, and counts that leave one to three ids after the last full group.
  const std::vector<std::string> ids{"0190f3a4-7c2b-7d11-8e5a-3b9c1d2e4f60", "m-1", "", "m-12345", "a", "m-1", "bb",
                                     "0190f3a4-7c2b-7d11-8e5a-3b9c1d2e4f61", "ccc", "", "dddd"};
  const DedupWindow::KeyHasher key_of("acme", "truck-1");
  for (std::size_t count = 0; count <= ids.size(); ++count) {
    CAPTURE(count);
    const std::vector<std::string_view> msg_ids(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count));
    std::vector<DedupWindow::Key> keys(count);
    key_of(msg_ids, keys);
    for (std::size_t i = 0; i < count; ++i) CHECK(keys[i] == DedupWindow::key("acme", "truck-1", ids[i]));
  }
}

TEST_CASE("the journal keeps its byte layout: each key's high then low half, little-endian") {
  const DedupWindow::Key key{0x0102030405060708ull, 0x1112131415161718ull};
  std::string journal = "x";  // appended after what the value holds already
  DedupWindow::append_journal(std::vector{key, key}, journal);
  const std::string one("\x08\x07\x06\x05\x04\x03\x02\x01\x18\x17\x16\x15\x14\x13\x12\x11", 16);
  CHECK(journal == "x" + one + one);
  // A trailing partial key (a torn value) is ignored.
  CHECK(DedupWindow::parse_journal(one + one + "abc") == std::vector{key, key});
  CHECK(DedupWindow::parse_journal("").empty());
}

TEST_CASE("reserve_all answers what reserve() would, key by key, repeats included") {
  DedupWindow batched(100'000, std::chrono::seconds(3600));
  DedupWindow one_by_one(100'000, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  // History in both: 0..299 committed, 300..399 in flight, 400..499 failed (forgotten).
  std::vector<DedupWindow::Key> committed, in_flight, failed;
  for (int i = 0; i < 300; ++i) committed.push_back(key(i));
  for (int i = 300; i < 400; ++i) in_flight.push_back(key(i));
  for (int i = 400; i < 500; ++i) failed.push_back(key(i));
  for (DedupWindow* window : {&batched, &one_by_one}) {
    const std::array history{reserve_request(*window, committed, now).reservation,
                             reserve_request(*window, in_flight, now).reservation,
                             reserve_request(*window, failed, now).reservation};
    REQUIRE(history[0].keys.size() + history[1].keys.size() + history[2].keys.size() == 500);
    window->settle(history[0], true);
    window->settle(history[2], false);
  }
  // One request touching every shard: old and new keys, and repeats of new ones.
  std::vector<DedupWindow::Key> request;
  for (int i = 0; i < 1000; i += 2) request.push_back(key(i));
  for (int i = 1000; i < 1040; ++i) request.push_back(key(i));
  for (int i = 1000; i < 1040; i += 3) request.push_back(key(i));
  const auto [reserved, seen] = reserve_request(batched, request, now);

  int committed_seen = 0, in_flight_seen = 0, wrong = 0;
  std::vector<DedupWindow::Reservation> singles(request.size());
  for (std::size_t i = 0; i < request.size(); ++i) {
    const DedupWindow::Seen expected = one_by_one.reserve(request[i], singles[i], now);
    if (seen[i] != expected) ++wrong;
    committed_seen += seen[i] == DedupWindow::Seen::committed;
    in_flight_seen += seen[i] == DedupWindow::Seen::in_flight;
  }
  CHECK(wrong == 0);
  CHECK(committed_seen == 150);                // the even ones of 0..299
  CHECK(in_flight_seen == 50 + 14);            // the even ones of 300..399, and the repeats
  CHECK(batched.size() == one_by_one.size());
  CHECK(reserved.keys.size() == request.size() - 150 - 50 - 14);

  // What reserve_all reserved settles like anything else.
  batched.settle(reserved, true);
  DedupWindow::Reservation again;
  CHECK(batched.reserve(key(1000), again, now) == DedupWindow::Seen::committed);
  CHECK(batched.reserve(key(400), again, now) == DedupWindow::Seen::committed);  // failed before, written now
  CHECK(again.generation == 0);  // it reserved nothing: nothing to settle
}

TEST_CASE("a reservation's keys are in flight until it settles: committed, or retryable after a failure") {
  DedupWindow window(100'000, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  const auto retry = [&](int i) {
    DedupWindow::Reservation probe;
    const DedupWindow::Seen seen = window.reserve(key(i), probe, now);
    window.settle(probe, false);  // a probe that reserved gives its key back
    return seen;
  };
  // Three batches in flight at once (A: 0..99, B: 100..199, C: 200..299), settled out of order:
  // C commits first, then B fails, then A commits.
  std::array<DedupWindow::Reservation, 3> batches;
  for (int b = 0; b < 3; ++b) {
    std::vector<DedupWindow::Key> keys;
    for (int i = b * 100; i < b * 100 + 100; ++i) keys.push_back(key(i));
    batches[b] = reserve_request(window, keys, now).reservation;
    REQUIRE(batches[b].generation != 0);
  }
  CHECK(retry(0) == DedupWindow::Seen::in_flight);
  CHECK(retry(150) == DedupWindow::Seen::in_flight);
  window.settle(batches[2], true);
  CHECK(retry(250) == DedupWindow::Seen::committed);  // while older batches are still open
  CHECK(retry(50) == DedupWindow::Seen::in_flight);
  window.settle(batches[1], false);
  CHECK(retry(150) == DedupWindow::Seen::no);  // the failed batch's retry is written
  CHECK(retry(50) == DedupWindow::Seen::in_flight);
  window.settle(batches[0], true);
  int wrong = 0;
  for (int i = 0; i < 300; ++i) {
    const auto expected = i / 100 == 1 ? DedupWindow::Seen::no : DedupWindow::Seen::committed;
    if (retry(i) != expected) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(window.size() == 200);
}

TEST_CASE("a reservation filled in parts settles as one, and settling twice changes nothing") {
  DedupWindow window(100'000, std::chrono::seconds(3600));
  DedupWindow::Reservation parts, probe;
  REQUIRE(window.reserve(key(1), parts) == DedupWindow::Seen::no);
  const std::uint64_t generation = parts.generation;
  REQUIRE(window.reserve(key(2), parts) == DedupWindow::Seen::no);
  CHECK(parts.generation == generation);
  CHECK(parts.keys.size() == 2);
  window.settle(parts, true);
  window.settle(parts, true);
  CHECK(window.reserve(key(1), probe) == DedupWindow::Seen::committed);
  CHECK(window.reserve(key(2), probe) == DedupWindow::Seen::committed);
  // Later reservations still open and close as before.
  DedupWindow::Reservation later;
  REQUIRE(window.reserve(key(3), later) == DedupWindow::Seen::no);
  CHECK(window.reserve(key(3), probe) == DedupWindow::Seen::in_flight);
  window.settle(later, false);
  CHECK(window.reserve(key(3), probe) == DedupWindow::Seen::no);
}

TEST_CASE("a failed batch forgets only its own entries, not a later reservation of the same key") {
  DedupWindow window(100'000, std::chrono::seconds(1));
  const auto start = DedupWindow::Clock::now();
  DedupWindow::Reservation first, second, probe;
  REQUIRE(window.reserve(key(7), first, start) == DedupWindow::Seen::no);
  window.settle(first, false);
  // The retry reserves the key again; the first reservation, settled failed a second time,
  // must not take the retry's entry with it.
  REQUIRE(window.reserve(key(7), second, start + std::chrono::seconds(2)) == DedupWindow::Seen::no);
  window.settle(first, false);
  CHECK(window.reserve(key(7), probe, start + std::chrono::seconds(2)) == DedupWindow::Seen::in_flight);
  window.settle(second, true);
  CHECK(window.reserve(key(7), probe, start + std::chrono::seconds(2)) == DedupWindow::Seen::committed);
}

TEST_CASE("a restart restores committed keys from the journal, without overriding keys in flight") {
  DedupWindow before(100'000, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  std::vector<DedupWindow::Key> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(key(i));
  const DedupWindow::Reservation written = reserve_request(before, keys, now).reservation;
  std::string journal;
  DedupWindow::append_journal(written.keys, journal);
  before.settle(written, true);

  DedupWindow after(100'000, std::chrono::seconds(3600));
  DedupWindow::Reservation racing;
  REQUIRE(after.reserve(key(600), racing) == DedupWindow::Seen::no);
  after.restore(DedupWindow::parse_journal(journal));
  after.restore(std::vector{key(600)});  // e.g. another replica's journal: must not settle ours
  auto [retry, seen] = reserve_request(after, std::vector(keys.begin(), keys.begin() + 250));
  CHECK(std::ranges::count(seen, DedupWindow::Seen::committed) == 250);
  CHECK(retry.generation == 0);
  CHECK(after.reserve(key(600), retry) == DedupWindow::Seen::in_flight);
  after.settle(racing, false);
  CHECK(after.reserve(key(600), retry) == DedupWindow::Seen::no);
  CHECK(after.size() == 501);
}

TEST_CASE("a committed entry keeps its state and age through the table's growth") {
  DedupWindow window(1'000'000, std::chrono::seconds(1));
  const auto start = DedupWindow::Clock::now();
  DedupWindow::Reservation first, probe;
  REQUIRE(window.reserve(key(0), first, start) == DedupWindow::Seen::no);
  window.settle(first, true);
  // Enough later keys that every shard's table grows several times and moves its slots.
  std::vector<DedupWindow::Key> later;
  for (int i = 1; i < 20'000; ++i) later.push_back(key(i));
  const Reserved in_flight = reserve_request(window, later, start);
  REQUIRE(in_flight.reservation.keys.size() == later.size());
  CHECK(window.reserve(key(0), probe, start) == DedupWindow::Seen::committed);
  CHECK(window.reserve(key(1), probe, start) == DedupWindow::Seen::in_flight);
  // Its insertion time survived the moves: past the window's age it is forgotten.
  CHECK(window.reserve(key(0), probe, start + std::chrono::milliseconds(1500)) == DedupWindow::Seen::no);
}

TEST_CASE("a committed key is remembered for at least max_entries later keys of its shard, and at most about twice") {
  constexpr int kPerShard = 100;
  DedupWindow window(kShards * kPerShard, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  // Every key, whatever its place in the tables' rotations, is still there after exactly the
  // shard's share of max_entries later keys.
  int forgotten = 0;
  for (int i = 0; i < 5 * kPerShard; ++i) {
    commit(window, shard_key(i), now);
    if (i >= kPerShard) forgotten += look_up(window, shard_key(i - kPerShard), now) != DedupWindow::Seen::committed;
  }
  CHECK(forgotten == 0);
  CHECK(look_up(window, shard_key(5 * kPerShard - 1 - 2 * kPerShard - 1), now) == DedupWindow::Seen::no);
  CHECK(window.size() <= 2 * (kPerShard + 1));  // each table: the limit, and the key that passes it
}

TEST_CASE("spread over every shard, a key is remembered for max_entries later keys, give or take the shards' spread") {
  constexpr int kMaxEntries = 16'000;
  DedupWindow window(kMaxEntries, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  constexpr int kKeys = 3 * kMaxEntries;
  for (int first = 0; first < kKeys; first += 100) {
    std::vector<DedupWindow::Key> keys;
    for (int i = first; i < first + 100; ++i) keys.push_back(key(i));
    DedupWindow::Reservation reserved;
    std::vector<DedupWindow::Seen> seen(keys.size());
    window.reserve_all(keys, now, seen, reserved);
    REQUIRE(reserved.keys.size() == keys.size());
    window.settle(reserved, true);
  }
  // The last 85 % of max_entries: each shard saw about 850 ± 30 later keys of its limit's 1 000.
  int forgotten = 0;
  for (int i = kKeys - kMaxEntries * 85 / 100; i < kKeys; ++i) {
    forgotten += look_up(window, key(i), now) != DedupWindow::Seen::committed;
  }
  CHECK(forgotten == 0);
  // Past twice the limit (and the shards' spread) nothing is left.
  int remembered = 0;
  for (int i = 0; i < kKeys - 2 * kMaxEntries * 115 / 100; ++i) {
    remembered += look_up(window, key(i), now) != DedupWindow::Seen::no;
  }
  CHECK(remembered == 0);
}

TEST_CASE("a key in flight survives the rotations that forget committed keys; failing it afterwards forgets it") {
  constexpr int kPerShard = 10;
  DedupWindow window(kShards * kPerShard, std::chrono::seconds(3600));
  const auto now = DedupWindow::Clock::now();
  DedupWindow::Reservation in_flight;
  REQUIRE(window.reserve(shard_key(0), in_flight, now) == DedupWindow::Seen::no);
  commit(window, shard_key(1), now);
  // Enough later keys for at least two rotations of the shard's tables.
  for (int i = 2; i < 2 + 3 * kPerShard; ++i) commit(window, shard_key(i), now);
  CHECK(look_up(window, shard_key(1), now) == DedupWindow::Seen::no);  // the rotations happened
  CHECK(look_up(window, shard_key(0), now) == DedupWindow::Seen::in_flight);
  for (int i = 100; i < 100 + 3 * kPerShard; ++i) commit(window, shard_key(i), now);
  CHECK(look_up(window, shard_key(0), now) == DedupWindow::Seen::in_flight);
  window.settle(in_flight, false);
  CHECK(look_up(window, shard_key(0), now) == DedupWindow::Seen::no);  // its retry is new
  CHECK(window.size() <= 2 * (kPerShard + 1) + 1);  // and the key in flight, moved in
}

TEST_CASE("by age: a key younger than max_age is remembered, one older than twice max_age is not") {
  DedupWindow window(1'000'000, std::chrono::seconds(10));
  const auto start = DedupWindow::Clock::now();
  const auto at = [&](int seconds) { return start + std::chrono::seconds(seconds); };
  DedupWindow::Reservation in_flight;
  REQUIRE(window.reserve(shard_key(0), in_flight, at(0)) == DedupWindow::Seen::no);
  commit(window, shard_key(1), at(0));
  commit(window, shard_key(2), at(5));  // the table that holds key 1 also holds a younger key
  CHECK(look_up(window, shard_key(1), at(9)) == DedupWindow::Seen::committed);
  CHECK(look_up(window, shard_key(1), at(21)) == DedupWindow::Seen::no);
  CHECK(look_up(window, shard_key(2), at(21)) == DedupWindow::Seen::no);
  CHECK(look_up(window, shard_key(0), at(21)) == DedupWindow::Seen::in_flight);  // never by age
  // A key is remembered through max_age across the rotation of its table: the table opened at
  // 21 (key 0 moved in) rotates at 32, with key 3 (entered at 22) in it.
  commit(window, shard_key(3), at(22));
  for (int s = 23; s <= 31; ++s) commit(window, shard_key(100 + s), at(s));
  CHECK(look_up(window, shard_key(3), at(32)) == DedupWindow::Seen::committed);
  CHECK(look_up(window, shard_key(3), at(43)) == DedupWindow::Seen::no);
  window.settle(in_flight, true);
  CHECK(look_up(window, shard_key(0), at(43)) == DedupWindow::Seen::committed);
  CHECK(look_up(window, shard_key(0), at(70)) == DedupWindow::Seen::no);
}

TEST_CASE("restored keys are found, and leave with their table like committed ones") {
  constexpr int kPerShard = 10;
  DedupWindow window(kShards * kPerShard, std::chrono::seconds(3600));
  std::vector<DedupWindow::Key> restored;
  for (int i = 0; i < kPerShard; ++i) restored.push_back(shard_key(i));
  window.restore(restored);
  const auto now = DedupWindow::Clock::now();
  int found = 0;
  for (const DedupWindow::Key& k : restored) found += look_up(window, k, now) == DedupWindow::Seen::committed;
  CHECK(found == kPerShard);
  for (int i = 100; i < 100 + 3 * kPerShard; ++i) commit(window, shard_key(i), now);
  int remembered = 0;
  for (const DedupWindow::Key& k : restored) remembered += look_up(window, k, now) != DedupWindow::Seen::no;
  CHECK(remembered == 0);
  CHECK(window.size() <= 2 * (kPerShard + 1));
}
