// The de-duplication window on its own: key values that journals depend on, and reserve_all()
// against the one-key-at-a-time reserve() it replaces on the request path.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "telegate/gateway/dedup.hpp"

using telegate::gateway::DedupWindow;

namespace {

DedupWindow::Key key(int i) { return DedupWindow::key("acme", "truck-" + std::to_string(i % 7), "m-" + std::to_string(i)); }

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
    CHECK(DedupWindow::parse_journal([&] {
            std::string journal;
            DedupWindow::append_journal({computed}, journal);
            return journal;
          }()) == std::vector<DedupWindow::Key>{computed});
  }
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
    for (const auto* keys : {&committed, &in_flight, &failed}) {
      for (const DedupWindow::Key& k : *keys) REQUIRE(window->reserve(k, now) == DedupWindow::Seen::no);
    }
    window->settle(committed, true);
    window->settle(failed, false);
  }
  // One request touching every shard: old and new keys, and repeats of new ones.
  std::vector<DedupWindow::Key> request;
  for (int i = 0; i < 1000; i += 2) request.push_back(key(i));
  for (int i = 1000; i < 1040; ++i) request.push_back(key(i));
  for (int i = 1000; i < 1040; i += 3) request.push_back(key(i));
  std::vector<DedupWindow::Seen> seen(request.size());
  batched.reserve_all(request, now, seen);

  int committed_seen = 0, in_flight_seen = 0, wrong = 0;
  for (std::size_t i = 0; i < request.size(); ++i) {
    const DedupWindow::Seen expected = one_by_one.reserve(request[i], now);
    if (seen[i] != expected) ++wrong;
    committed_seen += seen[i] == DedupWindow::Seen::committed;
    in_flight_seen += seen[i] == DedupWindow::Seen::in_flight;
  }
  CHECK(wrong == 0);
  CHECK(committed_seen == 150);                // the even ones of 0..299
  CHECK(in_flight_seen == 50 + 14);            // the even ones of 300..399, and the repeats
  CHECK(batched.size() == one_by_one.size());

  // What reserve_all reserved settles like anything else.
  std::vector<DedupWindow::Key> reserved;
  for (std::size_t i = 0; i < request.size(); ++i) {
    if (seen[i] == DedupWindow::Seen::no) reserved.push_back(request[i]);
  }
  batched.settle(reserved, true);
  CHECK(batched.reserve(key(1000), now) == DedupWindow::Seen::committed);
  CHECK(batched.reserve(key(400), now) == DedupWindow::Seen::committed);  // failed before, written now
}

TEST_CASE("a committed entry keeps its state and age through the table's growth") {
  DedupWindow window(1'000'000, std::chrono::seconds(1));
  const auto start = DedupWindow::Clock::now();
  REQUIRE(window.reserve(key(0), start) == DedupWindow::Seen::no);
  window.settle({key(0)}, true);
  // Enough later keys that every shard's table grows several times and moves its slots.
  std::vector<DedupWindow::Key> later;
  for (int i = 1; i < 20'000; ++i) later.push_back(key(i));
  std::vector<DedupWindow::Seen> seen(later.size());
  window.reserve_all(later, start, seen);
  CHECK(window.reserve(key(0), start) == DedupWindow::Seen::committed);
  CHECK(window.reserve(key(1), start) == DedupWindow::Seen::in_flight);
  // Its insertion time survived the moves: past the window's age it is forgotten.
  CHECK(window.reserve(key(0), start + std::chrono::milliseconds(1500)) == DedupWindow::Seen::no);
}
