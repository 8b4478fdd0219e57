// Admission: the bounded in-flight budget between listeners and the sink.
//
// Every record accepted from a device holds part of the budget (records and envelope bytes)
// from the moment it is sealed until the sink completes its batch. When the budget is spent
// listeners refuse ("try later") instead of buffering. A refusal is the high watermark: it
// tells listeners to pause reading; once what is in flight falls to the low watermark they are
// told to resume (Envoy-style flow control, with hysteresis so they do not flap).
//
// Layered fair shares (tenant → device type → device): while the budget is contended (what
// would be in flight passes the low watermark) a tenant may hold at most
//   budget × weight / Σ weights of the tenants currently holding records,
// (Σ counts one default weight more, for tenants that hold nothing at this moment), and inside
// a tenant each device type at most the tenant's share split the same way. Below the low
// watermark nobody is held to a share, so a lone tenant can use the gateway up to it. A
// single device is capped at `device_max_records` always. The checks read the layers' counters
// and then add to them, so concurrent requests can overshoot a share by at most one request per
// listener thread: a share is a fairness bound, the global budget is the hard one. A share or
// device refusal does not pause the listeners (that would stop the other tenants too).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace telegate::gateway {

// Lifecycle: built at start-up on the main thread (watermark listeners are added then) and
// outlives every listener and the sink. try_acquire() and permit release run on any thread:
// the accounting is lock-free; only watermark transitions take a mutex, so that pause and
// resume notifications are delivered in the order the transitions happened.
class InflightBudget {
 public:
  // One layer of the hierarchy: a tenant, or one device type inside a tenant. Created on first
  // use by account() and kept for the budget's life (tenants and types are few, and a permit may
  // still point at one), so listeners cache the pointer.
  class ShareAccount {
   public:
    ShareAccount(std::size_t weight, ShareAccount* parent) noexcept : weight_(weight), parent_(parent) {}
    std::size_t records() const noexcept { return records_.load(std::memory_order_relaxed); }
    std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

   private:
    friend class InflightBudget;
    const std::size_t weight_;
    ShareAccount* const parent_;  // the tenant of a device-type account; nullptr for a tenant
    std::atomic<std::size_t> records_{0};
    std::atomic<std::size_t> bytes_{0};
    std::atomic<std::size_t> active_weight_{0};  // Σ weights of this tenant's device types holding records
  };

  // Who asks: any field may be null (the layer is then not checked).
  struct Holder {
    ShareAccount* tenant = nullptr;
    ShareAccount* device_type = nullptr;           // an account whose parent is `tenant`
    std::atomic<std::size_t>* device = nullptr;    // the device's records in flight
  };

  enum class Refusal : std::uint8_t {
    budget,      // the global budget is spent (the high watermark: listeners pause)
    fair_share,  // the budget is contended and this tenant or device type holds its share
    device_cap,  // this device holds device_max_records
  };

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
    Permit(InflightBudget* budget, const Holder& holder, std::size_t records, std::size_t bytes) noexcept
        : budget_(budget), holder_(holder), records_(records), bytes_(bytes) {}
    InflightBudget* budget_ = nullptr;
    Holder holder_;
    std::size_t records_ = 0;
    std::size_t bytes_ = 0;
  };

  // true: pause reading; false: resume. Called on whichever thread made the transition, with
  // the budget's watermark mutex held: post to your own thread and never call back into the
  // budget from here.
  using WatermarkListener = std::function<void(bool pause)>;

  // The low watermark is `low_watermark_ratio` of each limit; it is also where fair shares start.
  InflightBudget(std::size_t max_records, std::size_t max_bytes, double low_watermark_ratio = 0.8,
                 std::size_t device_max_records = std::numeric_limits<std::size_t>::max());

  // A refusal when granting would exceed a limit. A single request larger than a limit is still
  // granted when its holder (the budget, the layer, the device) holds nothing, so that it is not
  // refused forever.
  std::expected<Permit, Refusal> try_acquire(std::size_t records, std::size_t bytes, const Holder& holder);
  // The global budget alone.
  std::optional<Permit> try_acquire(std::size_t records, std::size_t bytes);
  // Whether even one record of `holder` would be refused right now (the budget spent, or the
  // layers at their shares), so that a listener can refuse before decoding: under overload the
  // refused majority then costs no decode, validation or envelope work. Like a budget refusal
  // it raises the high watermark. Reserves nothing: try_acquire() still decides.
  std::optional<Refusal> refuses_one(const Holder& holder);

  // The tenant's account, or a device type's inside it (`device_type` non-empty). Weights count
  // from the first call on (config at start-up). Thread-safe; takes a mutex: cache the result.
  ShareAccount& account(std::string_view tenant, std::string_view device_type, std::size_t weight);

  void on_watermark(WatermarkListener listener);  // start-up only
  bool above_high_watermark() const noexcept { return above_high_.load(); }
  std::size_t records() const noexcept { return records_.load(std::memory_order_relaxed); }
  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t max_records() const noexcept { return max_records_; }
  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  // Adds to (or takes from) a layer, keeping its parent's Σ active weights.
  void add(ShareAccount* account, std::size_t records, std::size_t bytes) noexcept;
  void remove(ShareAccount* account, std::size_t records, std::size_t bytes) noexcept;
  std::atomic<std::size_t>& active_weight_of_parent(ShareAccount& account) noexcept {
    return account.parent_ ? account.parent_->active_weight_ : active_weight_;
  }
  struct Share {
    std::size_t records;
    std::size_t bytes;
  };
  static constexpr std::size_t kNewcomerWeight = 1;
  // `weight`'s part of `limit` when `active_weight` in all shares it.
  static Share share_of(std::size_t weight, std::size_t active_weight, Share limit) noexcept;
  // Whether `account` may not take `records`/`bytes` more within `share`.
  static bool over_share(const ShareAccount& account, Share share, std::size_t records, std::size_t bytes) noexcept;
  std::optional<Refusal> check_layers(const Holder& holder, std::size_t records, std::size_t bytes) const noexcept;
  void release(const Holder& holder, std::size_t records, std::size_t bytes) noexcept;
  bool at_or_below_low_watermark() const noexcept;
  void enter_high_watermark();
  void leave_high_watermark() noexcept;
  void notify(bool pause) noexcept;

  const std::size_t max_records_;
  const std::size_t max_bytes_;
  const std::size_t low_records_;
  const std::size_t low_bytes_;
  const std::size_t device_max_records_;
  std::atomic<std::size_t> active_weight_{0};  // Σ weights of the tenants holding records
  std::mutex accounts_mutex_;
  std::unordered_map<std::string, std::unique_ptr<ShareAccount>> accounts_;  // "tenant" or "tenant\x1ftype"
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
