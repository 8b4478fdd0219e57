#include "src/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <array>
#include <stdexcept>

namespace telegate::gateway {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's own reasons for the last failure, oldest first ("no start line; PEM lib").
std::string openssl_reason(const boost::system::error_code& error) {
  std::string reasons;
  std::array<char, 256> text{};
  while (const unsigned long queued = ERR_get_error()) {
    ERR_error_string_n(queued, text.data(), text.size());
    if (!reasons.empty()) reasons += "; ";
    reasons += text.data();
  }
  return reasons.empty() ? error.message() : reasons;
}

// Builds a server context from the files, or says which key's file it could not use.
std::expected<std::shared_ptr<ssl::context>, std::string> build_context(const TlsListenerConfig& config,
                                                                        const std::string& key) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  // TLS 1.2 is the oldest version without known protocol-level breaks; devices older than that
  // are not worth a downgrade path.
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  boost::system::error_code error;
  auto failed = [&](std::string_view field, const std::string& file) {
    return std::unexpected(key + "." + std::string(field) + ": cannot use '" + file + "': " + openssl_reason(error));
  };
  ERR_clear_error();
  if (context->use_certificate_chain_file(config.cert_file, error); error) return failed("cert_file", config.cert_file);
  if (context->use_private_key_file(config.key_file, ssl::context::pem, error); error) {
    return failed("key_file", config.key_file);
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) return failed("key_file", config.key_file);
  if (config.client_auth != TlsClientAuth::none) {
    if (context->load_verify_file(config.client_ca_file, error); error) {
      return failed("client_ca_file", config.client_ca_file);
    }
    // The CA names go into the CertificateRequest, so clients holding several certificates
    // (browsers, curl with a keychain) pick the right one.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(context->native_handle(), names);
    }
    context->set_verify_mode(config.client_auth == TlsClientAuth::require
                                 ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert
                                 : ssl::verify_peer);
    // Session resumption with client verification needs an id context (else the resumed
    // handshake fails); the section key is as good as any constant.
    SSL_CTX_set_session_id_context(context->native_handle(), reinterpret_cast<const unsigned char*>(key.data()),
                                   static_cast<unsigned int>(std::min<std::size_t>(key.size(), SSL_MAX_SID_CTX_LENGTH)));
  }
  return context;
}

}  // namespace

std::string verified_peer_identity(const SSL* ssl) {
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509* certificate = SSL_get0_peer_certificate(ssl);
  if (certificate == nullptr) return {};
  X509_NAME* subject = X509_get_subject_name(certificate);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return {};
  std::string identity(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  // An embedded NUL would let "tenant/dev\0..." pose as "tenant/dev" in a C-string compare.
  return identity.find('\0') == std::string::npos ? identity : std::string();
}

TlsContextHolder::TlsContextHolder(const TlsListenerConfig& config, std::string key, prometheus::Registry* registry,
                                   bool poll)
    : config_(config), key_(std::move(key)) {
  loaded_stamps_ = stamps();
  auto context = build_context(config_, key_);
  if (!context) throw std::runtime_error(context.error());
  context_.store(std::move(*context));
  if (registry) {
    auto& family = prometheus::BuildCounter()
                       .Name("telegate_tls_reload_total")
                       .Help("TLS certificate reloads after a file change, by listener and result")
                       .Register(*registry);
    const std::string listener = key_.substr(0, key_.find('.'));
    reloads_ok_ = &family.Add({{"listener", listener}, {"result", "success"}});
    reloads_failed_ = &family.Add({{"listener", listener}, {"result", "failure"}});
  }
  if (poll) poller_ = std::thread([this] { poll_loop(); });
}

TlsContextHolder::~TlsContextHolder() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (poller_.joinable()) poller_.join();
}

std::vector<TlsContextHolder::FileStamp> TlsContextHolder::stamps() const {
  std::vector<FileStamp> result;
  for (const std::string* file : {&config_.cert_file, &config_.key_file, &config_.client_ca_file}) {
    FileStamp stamp;
    struct stat info {};
    if (!file->empty() && ::stat(file->c_str(), &info) == 0) {
      stamp = FileStamp{info.st_mtim, static_cast<std::uint64_t>(info.st_ino), static_cast<std::int64_t>(info.st_size)};
    }
    result.push_back(stamp);
  }
  return result;
}

TlsContextHolder::Reload TlsContextHolder::reload_if_changed() {
  std::vector<FileStamp> now = stamps();
  if (now == loaded_stamps_) return Reload::unchanged;
  // Remembered even on failure: a broken file is reported once, not every interval; the fixed
  // file is a change again.
  loaded_stamps_ = std::move(now);
  auto context = build_context(config_, key_);
  if (!context) {
    spdlog::error("tls: reload failed, keeping the previous certificate: {}", context.error());
    if (reloads_failed_) reloads_failed_->Increment();
    return Reload::failed;
  }
  context_.store(std::move(*context));
  spdlog::info("tls: {} reloaded from {}", key_, config_.cert_file);
  if (reloads_ok_) reloads_ok_->Increment();
  return Reload::reloaded;
}

void TlsContextHolder::poll_loop() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, config_.reload_interval, [this] { return stopping_; })) {
    lock.unlock();
    reload_if_changed();
    lock.lock();
  }
}

}  // namespace telegate::gateway
