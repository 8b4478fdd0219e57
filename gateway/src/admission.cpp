#include "telegate/gateway/admission.hpp"

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
  std::size_t current = records_.load(std::memory_order_relaxed);
  do {
    if (current != 0 && current + records > max_records_) {
      if (!paused_.exchange(true)) notify(true);
      return std::nullopt;
    }
  } while (!records_.compare_exchange_weak(current, current + records, std::memory_order_relaxed));

  std::size_t current_bytes = bytes_.load(std::memory_order_relaxed);
  do {
    if (current_bytes != 0 && current_bytes + bytes > max_bytes_) {
      records_.fetch_sub(records, std::memory_order_relaxed);
      if (!paused_.exchange(true)) notify(true);
      return std::nullopt;
    }
  } while (!bytes_.compare_exchange_weak(current_bytes, current_bytes + bytes, std::memory_order_relaxed));
  return Permit(this, records, bytes);
}

void InflightBudget::release(std::size_t records, std::size_t bytes) noexcept {
  const std::size_t left_records = records_.fetch_sub(records, std::memory_order_relaxed) - records;
  const std::size_t left_bytes = bytes_.fetch_sub(bytes, std::memory_order_relaxed) - bytes;
  if (left_records <= low_records_ && left_bytes <= low_bytes_ && paused_.load(std::memory_order_relaxed) &&
      paused_.exchange(false)) {
    notify(false);
  }
}

void InflightBudget::on_watermark(WatermarkListener listener) { listeners_.push_back(std::move(listener)); }

void InflightBudget::notify(bool pause) {
  for (const auto& listener : listeners_) listener(pause);
}

}  // namespace telegate::gateway
