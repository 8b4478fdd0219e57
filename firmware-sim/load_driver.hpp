// Runs a load: a fleet of cheap simulated devices, served by lanes (one transport channel
// each) that take whichever device is due next, paced open loop or closed loop, retried by the
// shared RetryPolicy, counted in the RunReport.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "motion.hpp"
#include "payloads.hpp"
#include "retry_policy.hpp"
#include "run_report.hpp"
#include "transport.hpp"

namespace telegate::sim {

struct LoadPlan {
  std::size_t devices = 1;
  std::size_t connections = 1;
  std::size_t batch = 50;           // new records per device report (one for the phone-app profiles)
  std::size_t records = 0;          // total to send
  double rate = 0;                  // records/s over the fleet (open loop); 0 and no interval = closed loop
  double report_interval_s = 0;     // each device reports this often (open loop); 0 = from rate
  double duration_s = 0;            // stop making records after this long; 0 = when `records` are made
  std::size_t max_retries = 20;
  Profile profile = Profile::telegate_json;
  std::string run_id;
  std::string id_prefix = "sim";    // devices are <prefix>-<i>, tokens <prefix>-token-<i>
  bool progress = false;            // a progress line on stderr every second
};

std::string device_id(std::string_view prefix, std::size_t index);
std::string device_token(std::string_view prefix, std::size_t index);

// The simulated devices and when each reports next. Devices are plain values (motion state,
// sequence, store-and-forward buffer: about 130 bytes each with their schedule entry), not
// connections, so a fleet of 100,000 fits one process. One per run; used only on the
// io_context thread.
class Fleet {
 public:
  Fleet(const LoadPlan& plan, const MotionModel& motion);

  // The next request to send: fills `batch` and returns when it is due (now or earlier in
  // closed loop), or nothing once every record was made and every buffer drained. A device out
  // of coverage keeps its records (store-and-forward) and sends them, with their original
  // event times, in one batch when coverage returns.
  std::optional<Clock::time_point> take(Batch& batch);

  std::size_t made() const { return made_; }
  std::size_t buffered() const { return buffered_; }
  std::size_t forwarded() const { return forwarded_; }  // records sent after waiting out a gap

 private:
  struct Device {
    DeviceMotion motion;
    std::uint64_t sequence = 0;  // msg_id sequence of the next record made
    std::vector<Fix> buffer;     // made, not yet sent (empty unless in a gap or draining)
  };
  // A device's next report (`drain`: only sends what it holds, a phone app's queue one fix per
  // request). Open loop: `key` is ns after the start; closed loop: a round-robin counter.
  struct Due {
    std::int64_t key;
    std::uint32_t device;
    bool drain;
    bool operator>(const Due& other) const { return key != other.key ? key > other.key : device > other.device; }
  };

  void make_records(Device& device, std::size_t count, std::int64_t until_ms);
  bool making() const;

  const LoadPlan& plan_;
  const MotionModel& motion_;
  const ProfileInfo& profile_;
  std::size_t per_report_;  // records a device makes per report
  std::vector<Device> devices_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::int64_t interval_ns_;  // 0: closed loop
  Clock::time_point started_;
  std::size_t made_ = 0;
  std::size_t buffered_ = 0;
  std::size_t forwarded_ = 0;
};

// Makes one channel per lane; the transport's only part in a run.
using ChannelFactory = std::function<std::unique_ptr<Channel>()>;

// Runs the fleet on `io` (the calling thread) until every record is resolved, or until SIGINT
// or SIGTERM: then it stops at once and tells `report` where each lane was (interrupted()).
void run_load(boost::asio::io_context& io, const LoadPlan& plan, Fleet& fleet, const ChannelFactory& channels,
              RunReport& report);

}  // namespace telegate::sim
