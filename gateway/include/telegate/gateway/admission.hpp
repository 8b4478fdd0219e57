// Admission: the bounded in-flight budget between listeners and the sink.
//
// Every record accepted from a device holds part of the budget (records and envelope bytes)
// from the moment it is sealed until the sink completes its batch. When the budget is spent
// listeners refuse ("try later") instead of buffering. A refusal is the high watermark: it
// tells listeners to pause reading; once what is in flight falls to the low watermark they are
// told to resume (Envoy-style flow control, with hysteresis so they do not flap).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

namespace telegate::gateway {

// Lifecycle: built at start-up on the main thread (watermark listeners are added then) and
// outlives every listener and the sink. try_acquire() and permit release run on any thread:
// the accounting is lock-free; only watermark transitions take a mutex, so that pause and
// resume notifications are delivered in the order the transitions happened.
class InflightBudget {
 public:
  // A share of the budget; released when destroyed. Movable: it travels with the sink batch
  // and is released when the batch completes.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();

   private:
    friend class InflightBudget;
    Permit(InflightBudget* budget, std::size_t records, std::size_t bytes) noexcept
        : budget_(budget), records_(records), bytes_(bytes) {}
    InflightBudget* budget_ = nullptr;
    std::size_t records_ = 0;
    std::size_t bytes_ = 0;
  };

  // true: pause reading; false: resume. Called on whichever thread made the transition, with
  // the budget's watermark mutex held: post to your own thread and never call back into the
  // budget from here.
  using WatermarkListener = std::function<void(bool pause)>;

  // The low watermark is `low_watermark_ratio` of each limit.
  InflightBudget(std::size_t max_records, std::size_t max_bytes, double low_watermark_ratio = 0.8);

  // nullopt when granting would exceed either limit. A single request larger than the whole
  // budget is still granted when nothing else is in flight, so that it is not refused forever.
  std::optional<Permit> try_acquire(std::size_t records, std::size_t bytes);

  void on_watermark(WatermarkListener listener);  // start-up only
  bool above_high_watermark() const noexcept { return above_high_.load(); }
  std::size_t records() const noexcept { return records_.load(std::memory_order_relaxed); }
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t max_records() const noexcept { return max_records_; }
  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  void release(std::size_t records, std::size_t bytes) noexcept;
  bool at_or_below_low_watermark() const noexcept;
  void enter_high_watermark();
  void leave_high_watermark() noexcept;
  void notify(bool pause) noexcept;

  const std::size_t max_records_;
  const std::size_t max_bytes_;
  const std::size_t low_records_;
  const std::size_t low_bytes_;
  std::atomic<std::size_t> records_{0};
  std::atomic<std::size_t> bytes_{0};
  // Sequentially consistent with records_/bytes_ in the transition paths: a refusal that sets
  // it either sees a concurrent release's decrement or that release sees it set, so the budget
  // can never stay paused with nothing left in flight to resume it.
  std::atomic<bool> above_high_{false};
  std::mutex watermark_mutex_;
  std::vector<WatermarkListener> listeners_;
};

}  // namespace telegate::gateway
