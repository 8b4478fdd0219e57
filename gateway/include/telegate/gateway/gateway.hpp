// The telegate process: wires config → device registry → codecs → pipeline → sink → listeners,
// runs until SIGINT/SIGTERM, then drains (stop accepting, answer what is in flight, let the
// sink commit or fail everything it holds) and exits 0.
#pragma once

#include "telegate/gateway/config.hpp"

namespace telegate::gateway {

// Lifecycle: constructed and run() on the main thread, once.
class Gateway {
 public:
  explicit Gateway(GatewayConfig config);
  // Blocks until a termination signal; returns the process exit code. Throws on start-up errors.
  int run();

 private:
  GatewayConfig config_;
};

}  // namespace telegate::gateway
