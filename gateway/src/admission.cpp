#include "telegate/gateway/admission.hpp"

#include <algorithm>
#include <utility>

namespace telegate::gateway {

InflightBudget::Permit::Permit(Permit&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)), holder_(other.holder_), records_(other.records_), bytes_(other.bytes_) {}

InflightBudget::Permit& InflightBudget::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    if (budget_) budget_->release(holder_, records_, bytes_);
    budget_ = std::exchange(other.budget_, nullptr);
    holder_ = other.holder_;
    records_ = other.records_;
    bytes_ = other.bytes_;
  }
  return *this;
}

InflightBudget::Permit::~Permit() {
  if (budget_) budget_->release(holder_, records_, bytes_);
}

InflightBudget::InflightBudget(std::size_t max_records, std::size_t max_bytes, double low_watermark_ratio,
                               std::size_t device_max_records)
    : max_records_(max_records),
      max_bytes_(max_bytes),
      low_records_(static_cast<std::size_t>(static_cast<double>(max_records) * low_watermark_ratio)),
      low_bytes_(static_cast<std::size_t>(static_cast<double>(max_bytes) * low_watermark_ratio)),
      device_max_records_(device_max_records) {}

InflightBudget::ShareAccount& InflightBudget::account(std::string_view tenant, std::string_view device_type,
                                                      std::size_t weight) {
  ShareAccount* parent = device_type.empty() ? nullptr : &account(tenant, {}, 1);
  std::string key(tenant);
  if (!device_type.empty()) (key += '\x1f') += device_type;
  const std::lock_guard lock(accounts_mutex_);
  auto& slot = accounts_[key];
  if (!slot) slot = std::make_unique<ShareAccount>(weight == 0 ? 1 : weight, parent);
  return *slot;
}

void InflightBudget::add(ShareAccount* account, std::size_t records, std::size_t bytes) noexcept {
  if (!account) return;
  account->bytes_.fetch_add(bytes);
  if (account->records_.fetch_add(records) == 0) active_weight_of_parent(*account).fetch_add(account->weight_);
}

void InflightBudget::remove(ShareAccount* account, std::size_t records, std::size_t bytes) noexcept {
  if (!account) return;
  account->bytes_.fetch_sub(bytes);
  if (account->records_.fetch_sub(records) == records) active_weight_of_parent(*account).fetch_sub(account->weight_);
}

InflightBudget::Share InflightBudget::share_of(std::size_t weight, std::size_t active_weight, Share limit) noexcept {
  // max(): the counters may race with the asker's own release and momentarily leave it out.
  const double fraction = static_cast<double>(weight) / static_cast<double>(std::max(active_weight, weight));
  return {static_cast<std::size_t>(static_cast<double>(limit.records) * fraction),
          static_cast<std::size_t>(static_cast<double>(limit.bytes) * fraction)};
}

bool InflightBudget::over_share(const ShareAccount& account, Share share, std::size_t records, std::size_t bytes) noexcept {
  const std::size_t held_records = account.records();
  if (held_records == 0) return false;  // holding nothing: one request always passes the layer
  return held_records + records > share.records || account.bytes() + bytes > share.bytes;
}

std::optional<InflightBudget::Refusal> InflightBudget::check_layers(const Holder& holder, std::size_t records,
                                                                   std::size_t bytes) const noexcept {
  if (holder.tenant == nullptr) return std::nullopt;
  // Nobody gets in while the budget itself is spent: that refusal is the high watermark.
  if (records_.load(std::memory_order_relaxed) + records > max_records_ ||
      bytes_.load(std::memory_order_relaxed) + bytes > max_bytes_) {
    return std::nullopt;
  }
  const bool contended = records_.load(std::memory_order_relaxed) + records > low_records_ ||
                         bytes_.load(std::memory_order_relaxed) + bytes > low_bytes_;
  if (!contended) return std::nullopt;  // spare capacity: anyone may borrow
  const ShareAccount& tenant = *holder.tenant;
  // The tenants holding records, the asker, and one default weight for a tenant that holds
  // nothing right now: a light tenant between two requests holds nothing, and without that
  // slot a noisy tenant alone would count as the only one and fill the budget to the brim,
  // leaving the light one nothing but refusals. So a lone tenant borrows up to the low
  // watermark, and the headroom above it stays open to everyone below their share.
  const std::size_t active = active_weight_.load(std::memory_order_relaxed) +
                             (tenant.records() == 0 ? tenant.weight_ : 0) + kNewcomerWeight;
  const Share tenant_share = share_of(tenant.weight_, active, {max_records_, max_bytes_});
  if (over_share(tenant, tenant_share, records, bytes)) return Refusal::fair_share;
  if (holder.device_type == nullptr) return std::nullopt;
  // The tenant's share, split among its device types holding records (and the asker).
  const ShareAccount& type = *holder.device_type;
  const std::size_t type_active =
      tenant.active_weight_.load(std::memory_order_relaxed) + (type.records() == 0 ? type.weight_ : 0);
  if (over_share(type, share_of(type.weight_, type_active, tenant_share), records, bytes)) return Refusal::fair_share;
  return std::nullopt;
}

std::optional<InflightBudget::Refusal> InflightBudget::refuses_one(const Holder& holder) {
  const std::size_t held = records_.load(std::memory_order_relaxed);
  if (held != 0 && (held + 1 > max_records_ || bytes_.load(std::memory_order_relaxed) >= max_bytes_)) {
    enter_high_watermark();
    return Refusal::budget;
  }
  return check_layers(holder, 1, 0);
}

std::optional<InflightBudget::Permit> InflightBudget::try_acquire(std::size_t records, std::size_t bytes) {
  auto permit = try_acquire(records, bytes, Holder{});
  if (!permit) return std::nullopt;
  return std::move(*permit);
}

std::expected<InflightBudget::Permit, InflightBudget::Refusal> InflightBudget::try_acquire(std::size_t records,
                                                                                          std::size_t bytes,
                                                                                          const Holder& holder) {
  if (holder.device) {
    const std::size_t held = holder.device->fetch_add(records);
    if (held != 0 && held + records > device_max_records_) {
      holder.device->fetch_sub(records);
      return std::unexpected(Refusal::device_cap);
    }
  }
  const auto undo_device = [&] {
    if (holder.device) holder.device->fetch_sub(records);
  };
  if (auto refused = check_layers(holder, records, bytes)) {
    undo_device();
    return std::unexpected(*refused);
  }

  std::size_t current_records = records_.load(std::memory_order_relaxed);
  do {
    if (current_records != 0 && current_records + records > max_records_) {
      undo_device();
      enter_high_watermark();
      return std::unexpected(Refusal::budget);
    }
  } while (!records_.compare_exchange_weak(current_records, current_records + records, std::memory_order_relaxed));

  std::size_t current_bytes = bytes_.load(std::memory_order_relaxed);
  do {
    if (current_bytes != 0 && current_bytes + bytes > max_bytes_) {
      records_.fetch_sub(records);
      undo_device();
      enter_high_watermark();
      return std::unexpected(Refusal::budget);
    }
  } while (!bytes_.compare_exchange_weak(current_bytes, current_bytes + bytes, std::memory_order_relaxed));

  add(holder.tenant, records, bytes);
  add(holder.device_type, records, bytes);
  return Permit(this, holder, records, bytes);
}

void InflightBudget::release(const Holder& holder, std::size_t records, std::size_t bytes) noexcept {
  if (holder.device) holder.device->fetch_sub(records);
  remove(holder.device_type, records, bytes);
  remove(holder.tenant, records, bytes);
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
