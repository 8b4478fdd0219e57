// Linked into the telegate executable only with TELEGATE_ALLOCATOR=jemalloc (gateway/CMakeLists.txt).
// jemalloc reads this symbol once at start-up. A background thread returns freed pages to the
// kernel on a steady decay; without it jemalloc purges only when an arena happens to allocate,
// and the gateway's RSS moved in steps of ~10 MiB, enough to fail the soak's flatness criterion
// (docs/benchmarks.md §11 round 3). MALLOC_CONF in the environment still overrides it.
// Nothing else is set: longer or disabled dirty decay, thp:never, percpu_arena, narenas:1, larger
// tcaches changed neither the CPU per record nor the page faults measurably; thp:always removed
// most faults (jemalloc then zeroes calloc'd pages with memset, not MADV_DONTNEED) at +12–25 MiB
// RSS and no CPU gain (§18.alloc).
extern "C" {
const char* malloc_conf = "background_thread:true";
}
