// Binary vehicle-tracker protocols over TCP and UDP (Teltonika, GT06/Concox): the seam between
// the tracker listener (gateway/tracker/, framing-agnostic sockets, sessions, acks, pause) and one
// vendor protocol (gateway/tracker/<protocol>/: framing, login handshake, ack bytes).
//
// Records themselves are decoded by an ordinary codec (codecs/<protocol>/), so a tracker's
// payload goes through the same codec → validate → envelope → sink chain as HTTP, MQTT and CoAP;
// the protocol object only cuts frames out of the byte stream and builds the bytes the tracker
// expects back. A new tracker protocol is one folder here, one codec folder and one
// registration line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace telegate::gateway::tracker {

// Error codes of the tracker listener and its protocols.
enum class TrackerErrc : std::uint8_t {
  malformed_frame = 1,  // framing bytes, lengths or the packet layout are wrong
  bad_checksum,         // CRC-16/IBM (Teltonika) or CRC-ITU (GT06) does not match
  unsupported,          // a codec id / protocol number this protocol does not read
  frame_too_large,      // a length field beyond the listener's max_frame_bytes
  not_logged_in,        // records before the IMEI handshake / login packet
};

std::string_view to_string(TrackerErrc code) noexcept;

struct TrackerError {
  TrackerErrc code;
  std::string message;  // names the problem, e.g. "Codec 8 CRC 0x1f2e, computed 0xc7cf"
  // 0: the stream cannot be resynchronised, close the connection. Otherwise a well-formed frame
  // of this many bytes that the protocol does not read (GT06 `unsupported`): count the error,
  // drop these bytes and read on.
  std::size_t skip = 0;
};

// One unit cut from the front of a connection's byte stream (TCP) or one datagram (UDP).
struct Frame {
  enum class Kind : std::uint8_t {
    need_more,  // the input holds no complete frame yet; read more (consumed == 0)
    login,      // identifies the device: `imei` is set; answer with login_reply()
    records,    // `payload` goes to the protocol's codec; answer with records_reply() after commit
    heartbeat,  // keeps the session alive; answer with heartbeat_reply() at once
  };
  Kind kind = Kind::need_more;
  std::size_t consumed = 0;     // bytes of the input this frame used
  std::string imei;             // login, and records of datagram protocols (UDP carries it per packet)
  std::string_view payload;     // records: the bytes the codec decodes; points into the input
  std::uint32_t sequence = 0;   // what the ack must echo: GT06 serial number, UDP packet/AVL ids
  std::uint32_t record_count = 0;  // records the frame says it carries (Teltonika acks this count)
};

// Lifecycle: one instance per TCP connection (or per UDP peer), created by the listener when the
// connection is accepted and destroyed with it; used only by that connection's I/O thread.
class TrackerProtocol {
 public:
  virtual ~TrackerProtocol() = default;
  // Cuts the next frame from the front of `input`. Never throws or asserts on input; an error
  // means the stream cannot be resynchronised and the listener closes the connection, unless
  // it carries a `skip` length.
  virtual std::expected<Frame, TrackerError> next_frame(std::span<const std::uint8_t> input) = 0;
  // Bytes sent back for a login: accepted (the IMEI is provisioned) or refused.
  virtual std::string login_reply(const Frame& login, bool accepted) = 0;
  // Bytes sent back once `accepted` records of `frame` are committed (empty: send nothing).
  virtual std::string records_reply(const Frame& frame, std::size_t accepted) = 0;
  virtual std::string heartbeat_reply(const Frame& heartbeat) = 0;
};

// What the listener needs to know of a protocol; each protocol folder defines one, and
// gateway/src/listeners.cpp registers it with one line.
struct ProtocolSpec {
  std::string_view name;          // config section tracker.<name>; the `protocol` metric label
  std::string_view content_type;  // of Frame::payload: the device type's codec must read it
  std::unique_ptr<TrackerProtocol> (*stream)(std::size_t max_frame_bytes);    // one per TCP connection
  std::unique_ptr<TrackerProtocol> (*datagram)(std::size_t max_frame_bytes);  // one per UDP socket; nullptr: no UDP
};

}  // namespace telegate::gateway::tracker
