// Runs a load: lanes (one transport channel each) send the devices' batches, paced open loop
// or closed loop, retried by the shared RetryPolicy, counted in the RunReport.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "payloads.hpp"
#include "retry_policy.hpp"
#include "run_report.hpp"
#include "transport.hpp"

namespace telegate::sim {

struct LoadPlan {
  std::size_t devices = 1;
  std::size_t connections = 1;
  std::size_t batch = 50;    // records per request
  std::size_t records = 0;   // total to send
  double rate = 0;           // records/s over all lanes; 0 = closed loop
  std::size_t max_retries = 20;
  Profile profile = Profile::telegate_json;
  std::string run_id;
};

std::string device_id(std::size_t index);
std::string device_token(std::size_t index);

// Makes one channel per lane; the transport's only part in a run.
using ChannelFactory = std::function<std::unique_ptr<Channel>()>;

// Runs the plan on `io` (the calling thread) until every record is resolved.
void run_load(boost::asio::io_context& io, const LoadPlan& plan, const ChannelFactory& channels, RunReport& report);

}  // namespace telegate::sim
