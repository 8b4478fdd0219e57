// telegate-sim `tracker`: vehicle trackers speaking their vendor's binary protocol over TCP
// (Teltonika Codec 8, GT06/Concox), and `provision --imei-base` for their device registry.
//
// Each simulated tracker opens its own connection, logs in with its IMEI, sends its records in
// frames and waits for each frame's acknowledgement before the next one, as real trackers do;
// a frame that is not acknowledged (lost connection, timeout) is resent unchanged after it
// reconnects and logs in again. The encoders are plain functions so that the unit tests can
// check them against the vendors' published bytes and against the gateway's decoders.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::sim {

// One fix of a simulated tracker.
struct TrackerFix {
  std::int64_t time_ms = 0;  // Unix ms, UTC
  double lat = 0;
  double lon = 0;
  double altitude_m = 0;
  double speed_kmh = 0;
  double heading_deg = 0;
  unsigned satellites = 0;
};

// ---- GT06 / Concox ----
// Login (0x01): the IMEI as 8 BCD bytes, a leading 0 nibble before its 15 digits.
std::string gt06_login(std::string_view imei, std::uint16_t serial);
// GPS + LBS location (0x12): UTC time, positioned, hemisphere bits from the signs, a fixed cell.
std::string gt06_location(const TrackerFix& fix, std::uint16_t serial);
// The msg_id the gt06 codec gives that packet's location record (codecs/README.md, "GT06"):
// what `--ack-log` lists for the audit.
std::string gt06_location_msg_id(std::string_view imei, std::uint16_t serial, std::int64_t time_ms);

// ---- Teltonika ----
// One AVL record of Codec 8 with its I/O elements by width (ids are 1 byte in Codec 8).
struct AvlRecord {
  std::uint64_t timestamp_ms = 0;
  std::uint8_t priority = 0;
  std::int32_t lon_e7 = 0;  // degrees × 10^7
  std::int32_t lat_e7 = 0;
  std::int16_t altitude_m = 0;
  std::uint16_t angle_deg = 0;
  std::uint8_t satellites = 0;
  std::uint16_t speed_kmh = 0;
  std::uint8_t event_io = 0;
  std::vector<std::pair<std::uint8_t, std::uint8_t>> io1;
  std::vector<std::pair<std::uint8_t, std::uint16_t>> io2;
  std::vector<std::pair<std::uint8_t, std::uint32_t>> io4;
  std::vector<std::pair<std::uint8_t, std::uint64_t>> io8;
};

// The IMEI handshake: 2-byte length, then the IMEI's ASCII digits.
std::string teltonika_login(std::string_view imei);
// A TCP AVL packet: zero preamble, data length, codec 0x08, the records, their count again,
// CRC-16/IBM of codec id through the second count.
std::string teltonika_codec8(std::span<const AvlRecord> records);
// A UDP datagram: length, packet id, 01, AVL packet id, IMEI length and IMEI, then the AVL data
// array (codec id … second count; no CRC: UDP has its own checksum).
std::string teltonika_udp(std::uint16_t packet_id, std::uint8_t avl_packet_id, std::string_view imei,
                          std::span<const AvlRecord> records);
// The record a simulated fix becomes: ignition on, external voltage, odometer.
AvlRecord teltonika_record(const TrackerFix& fix);

// `telegate-sim tracker …` (README.md, "tracker"); prints one JSON summary line.
int tracker_replay(const boost::program_options::variables_map& options);
// `telegate-sim provision --imei-base …`: the tenants block with IMEI device ids.
int provision_trackers(const boost::program_options::variables_map& options);
// Adds the tracker mode's own options.
void add_tracker_options(boost::program_options::options_description& described);

}  // namespace telegate::sim
