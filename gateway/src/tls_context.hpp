// The TLS server context of one stream listener (HTTP or MQTT), reloaded when its files change.
//
// Loads cert_file, key_file and client_ca_file at start-up (a file it cannot use throws,
// naming the key and the file). A poll thread stats the files every reload_interval; when one
// changed it builds a whole new ssl::context and publishes it with an atomic shared_ptr swap,
// so connections accepted afterwards use the new certificate while open ones keep theirs. A
// new file that does not load (half-written, key not matching) keeps the old context, logs an
// error and counts telegate_tls_reload_total{listener,result="failure"}; the next change is
// tried again. Kubernetes Secret volumes swap a symlink: stat follows it, so that is a change.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "telegate/gateway/config.hpp"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace telegate::gateway {

// The device a verified client certificate names: its subject CN, which is "<tenant>/<device
// id>" (or the bare device id where only one tenant has it) — the same identity string as the
// DTLS-PSK identity. Empty when the peer sent no certificate or it did not verify.
std::string verified_peer_identity(const SSL* ssl);

// Lifecycle: constructed by a listener's start() on the main thread (throws there); the poll
// thread is its own and is joined by the destructor; current() is called from any I/O thread.
class TlsContextHolder {
 public:
  enum class Reload : std::uint8_t { unchanged, reloaded, failed };

  // `key` is the config section ("http.tls") errors and the metric's listener label name.
  // `registry` may be null (tests): no metric then. `poll` false: no thread (tests call reload()).
  TlsContextHolder(const TlsListenerConfig& config, std::string key, prometheus::Registry* registry, bool poll = true);
  ~TlsContextHolder();
  TlsContextHolder(const TlsContextHolder&) = delete;
  TlsContextHolder& operator=(const TlsContextHolder&) = delete;

  // The context new connections use.
  std::shared_ptr<boost::asio::ssl::context> current() const { return context_.load(); }

  // Loads the files again if any changed since the last load (poll thread, or a test).
  Reload reload_if_changed();

 private:
  struct FileStamp {
    std::timespec mtime{};
    std::uint64_t inode = 0;
    std::int64_t size = -1;
    bool operator==(const FileStamp& other) const noexcept {
      return mtime.tv_sec == other.mtime.tv_sec && mtime.tv_nsec == other.mtime.tv_nsec && inode == other.inode &&
             size == other.size;
    }
  };

  std::vector<FileStamp> stamps() const;
  void poll_loop();

  const TlsListenerConfig config_;
  const std::string key_;
  std::vector<FileStamp> loaded_stamps_;  // poll thread only (after construction)
  std::atomic<std::shared_ptr<boost::asio::ssl::context>> context_;
  prometheus::Counter* reloads_ok_ = nullptr;  // null without a registry
  prometheus::Counter* reloads_failed_ = nullptr;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace telegate::gateway
