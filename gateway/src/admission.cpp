#include "telegate/gateway/admission.hpp"

#include <utility>

namespace telegate::gateway {

InflightBudget::Permit::Permit(Permit&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)), records_(other.records_), bytes_(other.bytes_) {}

InflightBudget::Permit& InflightBudget::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    if (budget_) budget_->release(records_, bytes_);
    budget_ = std::exchange(other.budget_, nullptr);
    records_ = other.records_;
    bytes_ = other.bytes_;
  }
  return *this;
}

InflightBudget::Permit::~Permit() {
  if (budget_) budget_->release(records_, bytes_);
}

InflightBudget::InflightBudget(std::size_t max_records, std::size_t max_bytes, double low_watermark_ratio)
    : max_records_(max_records),
      max_bytes_(max_bytes),
      low_records_(static_cast<std::size_t>(static_cast<double>(max_records) * low_watermark_ratio)),
      low_bytes_(static_cast<std::size_t>(static_cast<double>(max_bytes) * low_watermark_ratio)) {}

std::optional<InflightBudget::Permit> InflightBudget::try_acquire(std::size_t records, std::size_t bytes) {
  std::size_t current_records = records_.load(std::memory_order_relaxed);
  do {
    if (current_records != 0 && current_records + records > max_records_) {
      enter_high_watermark();
      return std::nullopt;
    }
  } while (!records_.compare_exchange_weak(current_records, current_records + records, std::memory_order_relaxed));

  std::size_t current_bytes = bytes_.load(std::memory_order_relaxed);
  do {
    if (current_bytes != 0 && current_bytes + bytes > max_bytes_) {
      records_.fetch_sub(records);
      enter_high_watermark();
      return std::nullopt;
    }
  } while (!bytes_.compare_exchange_weak(current_bytes, current_bytes + bytes, std::memory_order_relaxed));
  return Permit(this, records, bytes);
}

void InflightBudget::release(std::size_t records, std::size_t bytes) noexcept {
  records_.fetch_sub(records);
  bytes_.fetch_sub(bytes);
  if (above_high_.load() && at_or_below_low_watermark()) leave_high_watermark();
}

bool InflightBudget::at_or_below_low_watermark() const noexcept {
  return records_.load() <= low_records_ && bytes_.load() <= low_bytes_;
}

void InflightBudget::enter_high_watermark() {
  if (above_high_.load()) return;  // one pause per episode, not one per refusal
  const std::lock_guard lock(watermark_mutex_);
  if (above_high_.load()) return;
  above_high_.store(true);
  // Whatever was in flight may have drained since the refusal, its releases having seen
  // above_high_ still false: then nobody is left to resume us, so do not pause.
  if (at_or_below_low_watermark()) {
    above_high_.store(false);
    return;
  }
  notify(true);
}

void InflightBudget::leave_high_watermark() noexcept {
  const std::lock_guard lock(watermark_mutex_);
  if (!above_high_.load() || !at_or_below_low_watermark()) return;
  above_high_.store(false);
  notify(false);
}

void InflightBudget::on_watermark(WatermarkListener listener) { listeners_.push_back(std::move(listener)); }

void InflightBudget::notify(bool pause) noexcept {
  for (const auto& listener : listeners_) listener(pause);
}

}  // namespace telegate::gateway
