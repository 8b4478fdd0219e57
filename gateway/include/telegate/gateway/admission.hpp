// Admission: the bounded in-flight budget between listeners and the sink.
//
// Every record accepted from a device holds part of the budget (records and envelope bytes)
// from the moment it is sealed until the sink completes its batch. When the budget is spent
// listeners refuse ("try later") instead of buffering; crossing the high watermark (the limit)
// tells listeners to pause reading, and falling below the low watermark tells them to resume
// (Envoy-style flow control). Lock-free; shared by every listener and sink thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

namespace telegate::gateway {

class InflightBudget {
 public:
  // A share of the budget; released when destroyed. Movable, owned by whoever carries the batch.
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

  // Pause/resume notification: true when listeners should pause, false when they may resume.
  // Called on whichever thread crossed the watermark; listeners post to their own threads.
  using WatermarkListener = std::function<void(bool pause)>;

  // The low watermark is `low_watermark_ratio` of each limit.
  InflightBudget(std::size_t max_records, std::size_t max_bytes, double low_watermark_ratio = 0.8);

  // nullopt when granting would exceed either limit. A single request larger than the whole
  // budget is still granted when nothing else is in flight, so that it is not refused forever.
  std::optional<Permit> try_acquire(std::size_t records, std::size_t bytes);

  void on_watermark(WatermarkListener listener);  // start-up only
  bool paused() const noexcept { return paused_.load(std::memory_order_relaxed); }
  std::size_t records() const noexcept { return records_.load(std::memory_order_relaxed); }
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t max_records() const noexcept { return max_records_; }
  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  void release(std::size_t records, std::size_t bytes) noexcept;
  void notify(bool pause);

  const std::size_t max_records_;
  const std::size_t max_bytes_;
  const std::size_t low_records_;
  const std::size_t low_bytes_;
  std::atomic<std::size_t> records_{0};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<bool> paused_{false};
  std::vector<WatermarkListener> listeners_;
};

}  // namespace telegate::gateway
