#include "coap/coap_listener.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <prometheus/counter.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coap/coap_protocol.hpp"

// libcoap's headers and macros use C casts and implicit conversions.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <coap3/coap.h>
#pragma GCC diagnostic pop

namespace telegate::gateway {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxDiagnosticBytes = 512;  // keeps error answers inside one datagram

constexpr std::uint8_t code_byte(int klass, int detail) { return static_cast<std::uint8_t>(klass << 5 | detail); }
constexpr int code_number(std::uint8_t code) { return (code >> 5) * 100 + (code & 0x1f); }  // 4.15 → 415

struct Answer {
  std::uint8_t code = code_byte(2, 4);
  std::optional<std::uint16_t> content_format;
  std::optional<std::uint32_t> max_age;
  std::optional<std::uint32_t> block1;  // Block1 (RFC 7959): echoed in 2.31 and in the final answer
  std::optional<std::uint32_t> size1;   // Size1: the limit, with 4.13 (RFC 7959 §2.9.3)
  std::string payload;
};

Answer diagnostic(int klass, int detail, std::string_view text, std::optional<std::uint32_t> max_age = {}) {
  Answer answer{code_byte(klass, detail), std::uint16_t{0} /* text/plain */, max_age, {}, {}, std::string(text)};
  if (answer.payload.size() > kMaxDiagnosticBytes) answer.payload.resize(kMaxDiagnosticBytes);
  return answer;
}

// The outcome as compact JSON for partial acceptance and rejection: which record, which field.
std::string errors_json(const IngestOutcome& outcome) {
  std::string body = "{\"accepted\":" + std::to_string(outcome.accepted) +
                     ",\"rejected\":" + std::to_string(outcome.errors.size()) + ",\"errors\":[";
  for (std::size_t i = 0; i < outcome.errors.size(); ++i) {
    const codecs::FieldError& error = outcome.errors[i];
    std::string item = i ? ",{\"index\":" : "{\"index\":";
    item += std::to_string(error.index) + ",\"field\":";
    envelope::append_json_string(item, error.field);
    item += ",\"reason\":";
    envelope::append_json_string(item, error.reason);
    item += '}';
    if (body.size() + item.size() + 2 > kMaxDiagnosticBytes) break;  // the first errors fit one datagram
    body += item;
  }
  body += "]}";
  return body;
}

Answer map_outcome(const IngestOutcome& outcome, const AdmissionConfig& admission) {
  const auto retry_after_s = static_cast<std::uint32_t>(retry_after(outcome, admission).count());
  switch (outcome.status) {
    case IngestStatus::accepted: return Answer{code_byte(2, 4), {}, {}, {}, {}, {}};
    case IngestStatus::partially_accepted:
      return Answer{code_byte(2, 4), std::uint16_t{50}, {}, {}, {}, errors_json(outcome)};
    case IngestStatus::all_rejected: return Answer{code_byte(4, 22), std::uint16_t{50}, {}, {}, {}, errors_json(outcome)};
    case IngestStatus::malformed: {
      std::string text = "malformed payload: " + outcome.message;
      if (outcome.offset) text += " (at byte " + std::to_string(*outcome.offset) + ")";
      return diagnostic(4, 0, text);
    }
    case IngestStatus::too_large:
    case IngestStatus::record_too_large: return diagnostic(4, 13, outcome.message);
    case IngestStatus::unsupported_media_type: return diagnostic(4, 15, outcome.message);
    case IngestStatus::forbidden: return diagnostic(4, 3, outcome.message);
    case IngestStatus::overloaded:
    case IngestStatus::sink_failed: return diagnostic(5, 3, outcome.message, retry_after_s);
    case IngestStatus::quota_exceeded: return diagnostic(4, 29, outcome.message, retry_after_s);  // RFC 8516
  }
  return diagnostic(5, 0, "internal error");
}

// Options in ascending number order (12, 14, 27, 60), as coap_add_option appends.
void fill(coap_pdu_t* pdu, const Answer& answer) {
  coap_pdu_set_code(pdu, static_cast<coap_pdu_code_t>(answer.code));
  std::uint8_t buffer[4];
  if (answer.content_format) {
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(buffer, sizeof buffer, *answer.content_format),
                    buffer);
  }
  if (answer.max_age) {
    coap_add_option(pdu, COAP_OPTION_MAXAGE, coap_encode_var_safe(buffer, sizeof buffer, *answer.max_age), buffer);
  }
  if (answer.block1) {
    coap_add_option(pdu, COAP_OPTION_BLOCK1, coap_encode_var_safe(buffer, sizeof buffer, *answer.block1), buffer);
  }
  if (answer.size1) {
    coap_add_option(pdu, COAP_OPTION_SIZE1, coap_encode_var_safe(buffer, sizeof buffer, *answer.size1), buffer);
  }
  if (!answer.payload.empty()) {
    coap_add_data(pdu, answer.payload.size(), reinterpret_cast<const std::uint8_t*>(answer.payload.data()));
  }
}

// The remote endpoint as bytes: address family, address, port, transport.
std::string endpoint_bytes(const coap_session_t* session) {
  const coap_address_t* remote = coap_session_get_addr_remote(session);
  std::string bytes(1, static_cast<char>(coap_session_get_proto(session)));
  if (!remote) return bytes;
  if (remote->addr.sa.sa_family == AF_INET) {
    bytes.append(reinterpret_cast<const char*>(&remote->addr.sin.sin_addr), sizeof remote->addr.sin.sin_addr);
    bytes.append(reinterpret_cast<const char*>(&remote->addr.sin.sin_port), sizeof remote->addr.sin.sin_port);
  } else if (remote->addr.sa.sa_family == AF_INET6) {
    bytes.append(reinterpret_cast<const char*>(&remote->addr.sin6.sin6_addr), sizeof remote->addr.sin6.sin6_addr);
    bytes.append(reinterpret_cast<const char*>(&remote->addr.sin6.sin6_port), sizeof remote->addr.sin6.sin6_port);
  }
  return bytes;
}

coap_address_t resolve(const std::string& host, std::uint16_t port, std::string_view key) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &found) != 0 || !found) {
    throw std::runtime_error(std::string(key) + ": cannot resolve '" + host + "'");
  }
  coap_address_t address;
  coap_address_init(&address);
  address.size = found->ai_addrlen;
  std::memcpy(&address.addr, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return address;
}

// The UDP socket libcoap bound to `bound`: libcoap 4.3.1 has no accessor for an endpoint's
// descriptor, so the process's own descriptors are searched for a datagram socket with exactly
// that local address. -1 when none matches.
int find_bound_udp_socket(const coap_address_t& bound) {
  DIR* fds = ::opendir("/proc/self/fd");
  if (!fds) return -1;
  int match = -1;
  const int own = ::dirfd(fds);
  while (const dirent* entry = ::readdir(fds)) {
    char* end = nullptr;
    const long number = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || number == own || number < 0 || number > 1'000'000) continue;
    const int fd = static_cast<int>(number);
    int type = 0;
    socklen_t type_length = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0 || type != SOCK_DGRAM) continue;
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) continue;
    const sockaddr& want = bound.addr.sa;
    if (local.ss_family != want.sa_family) continue;
    if (want.sa_family == AF_INET) {
      const auto& have = reinterpret_cast<const sockaddr_in&>(local);
      if (have.sin_port == bound.addr.sin.sin_port && have.sin_addr.s_addr == bound.addr.sin.sin_addr.s_addr) match = fd;
    } else if (want.sa_family == AF_INET6) {
      const auto& have = reinterpret_cast<const sockaddr_in6&>(local);
      if (have.sin6_port == bound.addr.sin6.sin6_port &&
          std::memcmp(&have.sin6_addr, &bound.addr.sin6.sin6_addr, sizeof have.sin6_addr) == 0) {
        match = fd;
      }
    }
    if (match >= 0) break;
  }
  ::closedir(fds);
  return match;
}

// Raises SO_RCVBUF of the endpoint's socket. A commit answers hundreds of devices at once, and
// their ACKs and next requests arrive as one burst: with the kernel's default (~212 KB) the
// excess is dropped and devices retransmit only after 2 s, 4 s, … Linux doubles the value
// (bookkeeping) and caps the request at net.core.rmem_max; SO_RCVBUFFORCE passes the cap where
// the process has CAP_NET_ADMIN. Logs what the kernel granted; never fails the start.
void raise_receive_buffer(const coap_address_t& bound, std::size_t bytes, std::string_view what) {
  if (bytes == 0) return;  // 0: keep the kernel's default
  const int fd = find_bound_udp_socket(bound);
  if (fd < 0) {
    spdlog::warn("coap: cannot find the {} socket to set coap.socket_receive_buffer_bytes; the kernel default stays", what);
    return;
  }
  const int asked = static_cast<int>(std::min<std::size_t>(bytes, std::size_t{1} << 30));
  auto granted = [fd] {
    int value = 0;
    socklen_t length = sizeof value;
    return ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &length) == 0 ? value : 0;
  };
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &asked, sizeof asked);
  if (granted() / 2 < asked) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &asked, sizeof asked);
  const int effective = granted() / 2;  // what the kernel reports is doubled
  if (effective < asked) {
    spdlog::warn("coap: {} receive buffer is {} bytes, not the {} of coap.socket_receive_buffer_bytes: the kernel caps it "
                 "at net.core.rmem_max (raise it: sysctl -w net.core.rmem_max={})",
                 what, effective, asked, asked);
  } else {
    spdlog::info("coap: {} receive buffer {} bytes", what, effective);
  }
}

void log_from_libcoap(coap_log_t level, const char* message) {
  std::string_view text(message);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  // Malformed datagrams make libcoap warn; that is device noise, not a gateway problem.
  if (level <= LOG_ERR) {
    spdlog::warn("coap: libcoap: {}", text);
  } else {
    spdlog::debug("coap: libcoap: {}", text);
  }
}

std::once_flag libcoap_started;

}  // namespace

// One request whose records are with the sink. Shared by the I/O thread and the completion
// (a sink thread), which writes `outcome` and then sets `done`; everything else is I/O-thread only.
struct Pending {
  std::string dedup_key;
  bool confirmable = true;
  std::vector<std::uint8_t> token;
  std::optional<std::uint32_t> block1;  // the last block of a Block1 request, echoed in the answer
  coap_session_t* session = nullptr;  // referenced while a separate response is owed
  std::shared_ptr<const Catalog> catalog;  // the snapshot the request was authenticated against
  IngestOutcome outcome;
  std::atomic<bool> done{false};
  bool answered = false;  // piggybacked before the handler returned
};

struct CoapListener::State {
  explicit State(const ListenerContext& listener_context)
      : context(listener_context),
        recent(listener_context.config.coap.dedup_max_entries),
        blocks(coap::Block1Transfers::Limits{
            listener_context.config.coap.max_body_bytes, listener_context.config.coap.max_block_transfers,
            listener_context.config.coap.block_transfer_memory_bytes,
            listener_context.config.coap.block_transfer_timeout}) {}

  const ListenerContext context;
  coap_context_t* coap = nullptr;
  int coap_fd = -1;  // libcoap's epoll descriptor: readable when a socket or timer needs service
  int wake_fd = -1;  // eventfd: completions and stop()
  std::thread thread;
  std::unique_ptr<PipelineWorker> pipeline;
  coap::RecentMessages recent;
  coap::Block1Transfers blocks;  // Block1 bodies being received (telegate's own reassembly)
  std::unordered_map<Pending*, std::shared_ptr<Pending>> outstanding;  // separate responses owed

  std::mutex completed_mutex;
  std::vector<std::shared_ptr<Pending>> completed;  // guarded by completed_mutex

  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> quit{false};
  std::atomic<bool> paused{false};
  std::atomic<std::size_t> in_flight{0};  // requests with the sink, not yet answered

  // DTLS: the key handed to libcoap by the identity callback (valid until the next handshake).
  std::string psk_key;
  coap_bin_const_t psk_result{0, nullptr};

  prometheus::Counter* confirmable = nullptr;
  prometheus::Counter* non_confirmable = nullptr;
  prometheus::Counter* duplicates = nullptr;
  prometheus::Counter* piggybacked = nullptr;
  prometheus::Counter* separate = nullptr;

  const ProtocolMetrics& metrics() const { return context.metrics.protocol(envelope::SourceProtocol::coap); }

  void wake() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd, &one, sizeof one);
  }
  void drain_wake() const {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto read = ::read(wake_fd, &count, sizeof count);
  }

  void count_answer(const Answer& answer) const { metrics().requests_with_status(code_number(answer.code)).Increment(); }

  void handle(coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query, coap_pdu_t* response);
  std::optional<Answer> authorize(coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query,
                                  const Catalog& catalog, const DeviceIdentity*& device);
  bool wait_for(const Pending& pending);
  void drain_completions(const Pending* current = nullptr);
  void send_separate(Pending& pending);
  void run();
  const coap_bin_const_t* psk_for(const coap_bin_const_t* identity);
};

namespace {

CoapListener::State* state_of(coap_session_t* session) {
  return static_cast<CoapListener::State*>(coap_get_app_data(coap_session_get_context(session)));
}

void on_request(coap_resource_t*, coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query,
                coap_pdu_t* response) {
  state_of(session)->handle(session, request, query, response);
}

const coap_bin_const_t* on_psk_identity(coap_bin_const_t* identity, coap_session_t* session, void* arg) {
  (void)session;
  return static_cast<CoapListener::State*>(arg)->psk_for(identity);
}

}  // namespace

// DTLS handshake: the PSK of the device the identity names, from the current catalog. nullptr
// fails the handshake (unknown device: the device sees a handshake alert, not a CoAP code).
const coap_bin_const_t* CoapListener::State::psk_for(const coap_bin_const_t* identity) {
  if (!identity || !identity->s) return nullptr;
  const auto catalog = context.catalog.current();
  const std::string_view name(reinterpret_cast<const char*>(identity->s), identity->length);
  const auto entry = catalog->devices().by_psk_identity(name);
  if (!entry) {
    metrics().reject(RejectReason::unauthenticated, 1);
    spdlog::debug("coap: DTLS handshake with unknown PSK identity '{}'", name.substr(0, 128));
    return nullptr;
  }
  psk_key.assign(entry->key);
  psk_result = coap_bin_const_t{psk_key.size(), reinterpret_cast<const std::uint8_t*>(psk_key.data())};
  return &psk_result;
}

// Credentials → device: the DTLS session's PSK identity (re-checked against the current catalog,
// so a deleted device or a rotated token stops working without waiting for the session to end),
// or on plain UDP the `t` Uri-Query token where coap.allow_token_query permits it.
std::optional<Answer> CoapListener::State::authorize(coap_session_t* session, const coap_pdu_t* request,
                                                     const coap_string_t* query, const Catalog& catalog,
                                                     const DeviceIdentity*& device) {
  (void)request;
  if (coap_session_get_proto(session) == COAP_PROTO_DTLS) {
    const coap_bin_const_t* identity = coap_session_get_psk_identity(session);
    const coap_bin_const_t* key = coap_session_get_psk_key(session);
    if (identity && key && identity->s) {
      const auto entry = catalog.devices().by_psk_identity(
          std::string_view(reinterpret_cast<const char*>(identity->s), identity->length));
      if (entry && key->length == entry->key.size() &&
          CRYPTO_memcmp(key->s, entry->key.data(), entry->key.size()) == 0) {
        device = entry->device;
        return std::nullopt;
      }
    }
    return diagnostic(4, 1, "the DTLS PSK identity matches no device (or its token changed): handshake again");
  }
  if (!context.config.coap.allow_token_query) {
    return diagnostic(4, 1, "use DTLS (coaps://, PSK identity = device id); coap.allow_token_query is off");
  }
  const std::string_view all = query ? std::string_view(reinterpret_cast<const char*>(query->s), query->length)
                                     : std::string_view();
  const std::string_view token = coap::query_token(all);
  device = catalog.devices().authenticate(token);
  if (device) return std::nullopt;
  return diagnostic(4, 1, token.empty() ? "device credentials are required: ?t=<device token> or DTLS-PSK"
                                        : "the credentials match no device");
}

void CoapListener::State::handle(coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query,
                                 coap_pdu_t* response) {
  const auto now = Clock::now();
  const bool confirmable_request = coap_pdu_get_type(request) == COAP_MESSAGE_CON;
  (confirmable_request ? confirmable : non_confirmable)->Increment();

  // A retransmission (same endpoint, same message id) is answered as the original was, never
  // ingested twice. Pending or answered separately: an empty ACK (CON) / nothing (NON).
  const std::string endpoint = endpoint_bytes(session);
  const std::string key = coap::RecentMessages::key(endpoint, static_cast<std::uint16_t>(coap_pdu_get_mid(request)));
  if (const coap::RecentAnswer* seen = recent.find(key, now)) {
    duplicates->Increment();
    if (confirmable_request && seen->state == coap::RecentAnswer::State::piggybacked) {
      fill(response, Answer{seen->code, seen->content_format, seen->max_age, seen->block1, seen->size1, seen->payload});
    }
    return;
  }
  coap::RecentAnswer& remembered = recent.insert(key, now);

  // Answers the request in the ACK (or, for NON, a NON response) and remembers the answer.
  auto answer_now = [&](const Answer& answer) {
    count_answer(answer);
    fill(response, answer);
    remembered.state = coap::RecentAnswer::State::piggybacked;
    remembered.code = answer.code;
    remembered.content_format = answer.content_format;
    remembered.max_age = answer.max_age;
    remembered.block1 = answer.block1;
    remembered.size1 = answer.size1;
    remembered.payload = answer.payload;
  };

  const std::uint32_t retry_after = static_cast<std::uint32_t>(context.config.admission.retry_after.count());
  if (stopping) return answer_now(diagnostic(5, 3, "the gateway is shutting down", 1));
  if (paused) {
    metrics().reject(RejectReason::overloaded, 1);
    return answer_now(diagnostic(5, 3, "the gateway is at its in-flight limit; retry later", retry_after));
  }

  std::shared_ptr<const Catalog> catalog = context.catalog.current();
  coap_string_t* uri_path = coap_get_uri_path(request);
  std::string path = "/";
  if (uri_path) {
    path.append(reinterpret_cast<const char*>(uri_path->s), uri_path->length);
    coap_delete_string(uri_path);
  }
  const DeviceTypeVersion* type = nullptr;
  if (path != "/v1/telemetry") {
    type = catalog->by_coap_path(path);
    if (!type) return answer_now(diagnostic(4, 4, "no such path: " + path.substr(0, 128)));
  }

  const DeviceIdentity* device = nullptr;
  if (auto refused = authorize(session, request, query, *catalog, device)) {
    metrics().reject(RejectReason::unauthenticated, 1);
    return answer_now(*refused);
  }
  if (type && device->device_type != type->definition.name) {
    metrics().reject(RejectReason::forbidden, 1);
    return answer_now(diagnostic(4, 3, "device '" + device->device_id + "' is of type " + device->device_type +
                                           ", not " + type->definition.name + " served at this path"));
  }

  coap_opt_iterator_t options;
  const coap_opt_t* format_option = coap_check_option(request, COAP_OPTION_CONTENT_FORMAT, &options);
  if (!format_option) {
    return answer_now(diagnostic(4, 15, "a Content-Format option is required: " +
                                            std::string(coap::supported_content_formats())));
  }
  const std::uint32_t format = coap_decode_var_bytes(coap_opt_value(format_option), coap_opt_length(format_option));
  const auto media_type = coap::media_type_for(format);
  if (!media_type) {
    return answer_now(diagnostic(4, 15, "Content-Format " + std::to_string(format) + " is not supported; use " +
                                            std::string(coap::supported_content_formats())));
  }

  // The body: this datagram's payload, or (Block1) the reassembled blocks. libcoap's block mode
  // is off, so the handler sees every block as it arrives and refuses at the first one that
  // crosses coap.max_body_bytes (or at block 0 when Size1 announces more).
  std::size_t length = 0;
  const std::uint8_t* data = nullptr;
  if (!coap_get_data(request, &length, &data)) length = 0;
  const std::string_view payload = length ? std::string_view(reinterpret_cast<const char*>(data), length)
                                          : std::string_view();
  std::optional<std::size_t> size1;
  if (const coap_opt_t* size_option = coap_check_option(request, COAP_OPTION_SIZE1, &options)) {
    size1 = coap_decode_var_bytes(coap_opt_value(size_option), coap_opt_length(size_option));
  }
  const std::size_t limit = context.config.coap.max_body_bytes;
  const auto too_large = [&] {
    Answer answer = diagnostic(4, 13, "the payload exceeds coap.max_body_bytes (" + std::to_string(limit) + " bytes)");
    answer.size1 = static_cast<std::uint32_t>(limit);
    return answer;
  };
  std::string assembled;  // a complete Block1 body
  std::optional<std::uint32_t> final_block;
  std::string_view body = payload;
  if (const coap_opt_t* block_option = coap_check_option(request, COAP_OPTION_BLOCK1, &options)) {
    const auto block = coap::decode_block1(coap_decode_var_bytes(coap_opt_value(block_option), coap_opt_length(block_option)));
    if (!block) return answer_now(diagnostic(4, 0, "Block1: BERT (SZX 7) needs a reliable transport; use SZX 0..6"));
    // What identifies the transfer besides the endpoint (RFC 7959 §2.4, RFC 9175 Request-Tag):
    // a block for another path, query, Content-Format or tag does not continue this one.
    std::string transfer = path;
    transfer.push_back('\0');
    if (query) transfer.append(reinterpret_cast<const char*>(query->s), query->length);
    transfer.push_back('\0');
    transfer += std::to_string(format);
    if (const coap_opt_t* tag = coap_check_option(request, COAP_OPTION_RTAG, &options)) {
      transfer.push_back('\0');
      transfer.append(reinterpret_cast<const char*>(coap_opt_value(tag)), coap_opt_length(tag));
    }
    coap::BlockResult result = blocks.add(endpoint, transfer, *block, size1, payload, now);
    switch (result.verdict) {
      case coap::BlockVerdict::next: {
        Answer next{code_byte(2, 31), {}, {}, block->encode(), {}, {}};
        return answer_now(next);
      }
      case coap::BlockVerdict::too_large: return answer_now(too_large());
      case coap::BlockVerdict::incomplete:
        return answer_now(diagnostic(4, 8, "Block1: block " + std::to_string(block->num) +
                                               " does not continue a transfer in progress; start again at block 0"));
      case coap::BlockVerdict::bad_block:
        return answer_now(diagnostic(4, 0, "Block1: a block with M=1 must carry exactly its block size"));
      case coap::BlockVerdict::busy:
        metrics().reject(RejectReason::overloaded, 1);
        return answer_now(diagnostic(5, 3, "too many Block1 transfers in progress; retry later", retry_after));
      case coap::BlockVerdict::complete: break;
    }
    assembled = std::move(result.body);
    body = assembled;
    final_block = coap::Block1{block->num, false, block->szx}.encode();
  } else if (length > limit || (size1 && *size1 > limit)) {
    return answer_now(too_large());
  }
  // The final answer to a Block1 request echoes its last block (RFC 7959 §2.3).
  const auto with_block = [&](Answer answer) {
    answer.block1 = final_block;
    return answer;
  };

  auto pending = std::make_shared<Pending>();
  pending->dedup_key = key;
  pending->confirmable = confirmable_request;
  pending->catalog = catalog;
  ++in_flight;
  std::optional<IngestOutcome> immediate = pipeline->ingest(
      IngestRequest{*catalog, *device, *media_type, body, envelope::SourceProtocol::coap},
      [this, pending](IngestOutcome outcome) {
        pending->outcome = std::move(outcome);
        pending->done.store(true, std::memory_order_release);
        {
          const std::lock_guard lock(completed_mutex);
          completed.push_back(pending);
        }
        wake();
      });
  if (immediate) {
    --in_flight;
    return answer_now(with_block(map_outcome(*immediate, context.config.admission)));
  }
  if (confirmable_request && wait_for(*pending)) {
    pending->answered = true;  // drain_completions() will skip it
    --in_flight;
    piggybacked->Increment();
    return answer_now(with_block(map_outcome(pending->outcome, context.config.admission)));
  }
  // Owed later: a CON gets its empty ACK now (the handler leaves the code empty), a NON nothing.
  const coap_bin_const_t token = coap_pdu_get_token(request);
  pending->token.assign(token.s, token.s + token.length);
  pending->block1 = final_block;
  pending->session = coap_session_reference(session);
  outstanding.emplace(pending.get(), pending);
  if (!confirmable_request) coap_pdu_set_type(response, COAP_MESSAGE_NON);
}

// Waits up to coap.piggyback_wait_ms for the sink — but only while nothing else is waiting: a
// readable libcoap descriptor (another datagram, a retransmission timer) ends the wait at once,
// so under load every CON gets its empty ACK immediately and the I/O thread never idles.
// Completions of other requests that arrive meanwhile are answered at once, not after the wait:
// otherwise one request waiting for the next commit held back the separate responses of the
// commit that had just finished, by up to piggyback_wait_ms.
bool CoapListener::State::wait_for(const Pending& pending) {
  const auto wait = context.config.coap.piggyback_wait;
  if (wait.count() == 0 || coap_fd < 0) return pending.done.load(std::memory_order_acquire);
  const auto deadline = Clock::now() + wait;
  while (!pending.done.load(std::memory_order_acquire)) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) break;
    pollfd fds[2] = {{coap_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>(remaining) + 1);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) break;
    if (fds[1].revents & POLLIN) {
      drain_wake();
      drain_completions(&pending);
    }
  }
  return pending.done.load(std::memory_order_acquire);
}

// I/O thread: sends the separate responses whose completions have arrived. `current`, the
// request whose handler is waiting (wait_for), is left queued: its handler piggybacks the
// answer, and the next drain skips it as answered.
void CoapListener::State::drain_completions(const Pending* current) {
  std::vector<std::shared_ptr<Pending>> ready;
  {
    const std::lock_guard lock(completed_mutex);
    ready.swap(completed);
  }
  for (auto& pending : ready) {
    if (pending.get() == current) {
      const std::lock_guard lock(completed_mutex);
      completed.push_back(std::move(pending));
      continue;
    }
    if (pending->answered) continue;
    send_separate(*pending);
  }
}

void CoapListener::State::send_separate(Pending& pending) {
  pending.answered = true;
  --in_flight;
  separate->Increment();
  Answer answer = map_outcome(pending.outcome, context.config.admission);
  answer.block1 = pending.block1;
  count_answer(answer);
  if (coap::RecentAnswer* remembered = recent.find(pending.dedup_key, Clock::now())) {
    remembered->state = coap::RecentAnswer::State::separate;
  }
  coap_session_t* session = pending.session;
  pending.session = nullptr;
  if (session) {
    // CON: libcoap retransmits it until the device ACKs (or gives up after MAX_RETRANSMIT).
    coap_pdu_t* pdu = coap_new_pdu(pending.confirmable ? COAP_MESSAGE_CON : COAP_MESSAGE_NON, COAP_EMPTY_CODE, session);
    if (pdu && coap_add_token(pdu, pending.token.size(), pending.token.data())) {
      fill(pdu, answer);
      if (coap_send(session, pdu) == COAP_INVALID_MID) {
        spdlog::debug("coap: separate response to {} could not be sent", code_number(answer.code));
      }
    } else if (pdu) {
      coap_delete_pdu(pdu);
    }
    coap_session_release(session);
  }
  outstanding.erase(&pending);
}

void CoapListener::State::run() {
  while (!quit.load(std::memory_order_acquire)) {
    coap_io_process(coap, COAP_IO_NO_WAIT);
    drain_completions();
    if (coap_fd < 0) {  // libcoap without epoll: its own wait, with a short bound for completions
      coap_io_process(coap, 5);
      continue;
    }
    // coap_io_process() armed libcoap's timerfd (inside its epoll set) for the next
    // retransmission, so coap_fd turns readable for timers too; the 1 s bound is a safety net.
    // (A second coap_io_prepare_epoll() here would walk every session again per datagram.)
    pollfd fds[2] = {{coap_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = ::poll(fds, 2, 1000);
    if (ready > 0 && (fds[1].revents & POLLIN)) drain_wake();
  }
  drain_completions();
}

CoapListener::CoapListener(const ListenerContext& context) : state_(std::make_unique<State>(context)) {}

CoapListener::~CoapListener() {
  if (state_->started && !state_->quit) stop(std::chrono::milliseconds(0));
  if (state_->wake_fd >= 0) ::close(state_->wake_fd);
}

bool CoapListener::accepting() const noexcept { return state_->started && !state_->stopping; }

void CoapListener::start() {
  State& state = *state_;
  const CoapListenerConfig& config = state.context.config.coap;
  std::call_once(libcoap_started, [] {
    coap_startup();
    coap_set_log_handler(log_from_libcoap);
    coap_set_log_level(LOG_WARNING);
    coap_dtls_set_log_level(LOG_ERR);
  });

  prometheus::Registry& registry = state.context.metrics.registry();
  auto& messages = prometheus::BuildCounter()
                       .Name("telegate_coap_requests_total")
                       .Help("CoAP requests by message type (NON: best effort, no retransmission)")
                       .Register(registry);
  state.confirmable = &messages.Add({{"type", "con"}});
  state.non_confirmable = &messages.Add({{"type", "non"}});
  state.duplicates = &prometheus::BuildCounter()
                          .Name("telegate_coap_duplicates_total")
                          .Help("Retransmitted CoAP requests answered from the recent-message cache, not ingested")
                          .Register(registry)
                          .Add({});
  auto& responses = prometheus::BuildCounter()
                        .Name("telegate_coap_sink_responses_total")
                        .Help("Answers to requests that went to the sink: piggybacked in the ACK or separate")
                        .Register(registry);
  state.piggybacked = &responses.Add({{"mode", "piggybacked"}});
  state.separate = &responses.Add({{"mode", "separate"}});

  state.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state.wake_fd < 0) throw std::runtime_error(std::string("coap: eventfd: ") + std::strerror(errno));
  state.coap = coap_new_context(nullptr);
  if (!state.coap) throw std::runtime_error("coap: cannot create a libcoap context");
  coap_set_app_data(state.coap, &state);
  // No libcoap block mode: with COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY, libcoap 4.3.1
  // reassembles the whole body (allocating what Size1 announces) before the handler can refuse
  // it; without SINGLE_BODY it still keeps per-session state the handler cannot bound. The
  // handler gets every Block1 block as it is and coap::Block1Transfers reassembles.
  coap_context_set_max_idle_sessions(state.coap, static_cast<unsigned int>(config.max_sessions));

  if (config.port != 0) {
    const coap_address_t address = resolve(config.address, config.port, "coap.address");
    if (!coap_new_endpoint(state.coap, &address, COAP_PROTO_UDP)) {
      throw std::runtime_error("coap.port: cannot listen on " + config.address + ":" + std::to_string(config.port));
    }
    raise_receive_buffer(address, config.socket_receive_buffer_bytes, "udp");
  }
  if (config.dtls) {
    if (!coap_dtls_is_supported()) throw std::runtime_error("coap.dtls: this libcoap has no DTLS support");
    coap_dtls_spsk_t setup{};
    setup.version = COAP_DTLS_SPSK_SETUP_VERSION;
    setup.validate_id_call_back = on_psk_identity;
    setup.id_call_back_arg = &state;
    if (!coap_context_set_psk2(state.coap, &setup)) throw std::runtime_error("coap.dtls: cannot set up DTLS-PSK");
    const coap_address_t address = resolve(config.address, config.dtls_port, "coap.address");
    if (!coap_new_endpoint(state.coap, &address, COAP_PROTO_DTLS)) {
      throw std::runtime_error("coap.dtls_port: cannot listen on " + config.address + ":" +
                               std::to_string(config.dtls_port));
    }
    raise_receive_buffer(address, config.socket_receive_buffer_bytes, "dtls");
  }

  // Every path is resolved per request against the current catalog (device types and their
  // coap.path change at run time), so one catch-all resource serves POST and PUT.
  coap_resource_t* resource = coap_resource_unknown_init2(on_request, 0);
  coap_register_handler(resource, COAP_REQUEST_POST, on_request);
  coap_add_resource(state.coap, resource);

  state.coap_fd = coap_context_get_coap_fd(state.coap);
  state.pipeline = state.context.pipeline.make_worker();
  state.thread = std::thread([&state] { state.run(); });
  state.started = true;
  spdlog::info("coap: listening on {} udp:{}{}", config.address, config.port,
               config.dtls ? " dtls:" + std::to_string(config.dtls_port) : std::string());
}

void CoapListener::stop(std::chrono::milliseconds grace) {
  State& state = *state_;
  if (!state.started || state.stopping.exchange(true)) return;
  // New requests get 5.03 now; those with the sink get their answers within the grace period.
  const auto deadline = Clock::now() + grace;
  while (state.in_flight > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // One more moment for libcoap to put the last separate responses on the wire.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (state.in_flight > 0) spdlog::warn("coap: {} requests still unanswered after the grace period", state.in_flight.load());
  state.quit = true;
  state.wake();
  if (state.thread.joinable()) state.thread.join();
  for (auto& [raw, pending] : state.outstanding) {
    if (pending->session) coap_session_release(pending->session);
    pending->session = nullptr;
  }
  state.outstanding.clear();
  coap_free_context(state.coap);
  state.coap = nullptr;
}

void CoapListener::pause() { state_->paused = true; }
void CoapListener::resume() { state_->paused = false; }

}  // namespace telegate::gateway
