// sinks::RecordRecycler: what it keeps for reuse, and that its byte bound holds.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "telegate/sinks/sink.hpp"

using telegate::envelope::SealedRecord;
using telegate::sinks::RecordRecycler;

namespace {

std::vector<SealedRecord> records(std::size_t count, std::size_t value_bytes) {
  std::vector<SealedRecord> out(count);
  for (SealedRecord& record : out) record.value.assign(value_bytes, 'v');
  return out;
}

}  // namespace

TEST_CASE("a batch's records come back with their strings' capacity; empty vectors are not kept") {
  RecordRecycler recycler(1 << 20);
  CHECK(recycler.take().empty());
  std::vector<SealedRecord> given = records(3, 500);
  const char* buffer = given[1].value.data();
  recycler.give(std::move(given));
  recycler.give({});
  const std::vector<SealedRecord> taken = recycler.take();
  REQUIRE(taken.size() == 3);
  CHECK(taken[1].value.data() == buffer);
  CHECK(recycler.take().empty());
}

TEST_CASE("records over the byte bound are freed, not kept; what is taken makes room again") {
  RecordRecycler recycler(64 << 10);
  recycler.give(records(1, 1 << 20));  // one large record alone is over the bound
  CHECK(recycler.take().empty());
  recycler.give(records(10, 2000));  // ~20 KB plus the records themselves
  recycler.give(records(10, 2000));
  recycler.give(records(10, 2000));  // over 64 KB with the two before: freed
  CHECK(recycler.take().size() == 10);
  CHECK(recycler.take().size() == 10);
  CHECK(recycler.take().empty());
  recycler.give(records(10, 2000));  // room again
  CHECK(recycler.take().size() == 10);
}

TEST_CASE("bytes the caller counted are what the bound is checked against; 0 has the recycler count them") {
  RecordRecycler recycler(64 << 10);
  recycler.give(records(1, 100), 1 << 20);  // small records, but counted as 1 MiB: over the bound
  CHECK(recycler.take().empty());
  std::vector<SealedRecord> given = records(4, 100);
  std::size_t counted = given.capacity() * sizeof(SealedRecord);
  for (const SealedRecord& record : given) counted += RecordRecycler::record_bytes(record);
  recycler.give(std::move(given), counted);
  CHECK(recycler.take().size() == 4);
  recycler.give(records(1, 1 << 20), 0);  // counted here: one large record alone is over the bound
  CHECK(recycler.take().empty());
}
