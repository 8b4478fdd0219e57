// End to end for Teltonika trackers against the real broker: a raw TCP (and UDP) client speaks
// the wire protocol byte for byte — the IMEI handshake and the Teltonika wiki's worked
// examples — to the real telegate binary, and Kafka is read back read_committed. Proves: the
// ack (record count) arrives only once the records are committed (they are below the last
// stable offset the moment the ack is read); an unknown IMEI is refused and the connection
// closed; a resent frame is acknowledged again but not written twice; a bad CRC closes the
// connection without an ack; a UDP datagram is acknowledged with its packet and AVL ids.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include "gateway_process.hpp"
#include "loopback_socket.hpp"
#include "kafka_reader.hpp"
#include "teltonika_examples.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::GatewayProcess;
using Socket = telegate::testing::LoopbackSocket;
using telegate::testing::TempDir;
using namespace telegate::testing::teltonika;

namespace {

// Sends `frame` and returns how long its `reply` took; fails the test if another reply came.
std::chrono::milliseconds ack_latency(Socket& tracker, const std::string& frame, const std::string& reply) {
  const auto sent = std::chrono::steady_clock::now();
  tracker.send(frame);
  const std::string got = tracker.receive(reply.size());
  REQUIRE(got == reply);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
}

std::size_t committed_now(const std::string& topic) {
  return testing::read_committed_to_end(testing::kafka_bootstrap(), topic).size();
}

}  // namespace

TEST_CASE("teltonika trackers over TCP and UDP into Kafka, acked only after the commit") {
  constexpr int kCommitMs = 1500;
  const auto after_commit = std::chrono::milliseconds(kCommitMs - 100);  // timer slack
  const std::string run = testing::unique_run_id();
  const std::uint16_t tcp_port = testing::free_port();
  const std::uint16_t udp_port = testing::free_udp_port();
  TempDir dir;
  // An idle gateway's transaction commits 1.5 s after it opened with a frame's records: an ack
  // written from the commit cannot come sooner, one written before it would come in
  // milliseconds. And once the ack is read, the records must be below the last stable offset.
  GatewayProcess gateway(dir.path(),
                         "instance_id: it-teltonika-" + run + "\n"
                         "tracker:\n"
                         "  teltonika: {enabled: true, bind: 127.0.0.1, tcp_port: " + std::to_string(tcp_port) +
                             ", udp_port: " + std::to_string(udp_port) + ", tenant: fleet}\n" +
                             testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", kCommitMs) +
                             "device_types:\n"
                             "  - name: fmb\n"
                             "    codec: teltonika\n"
                             "    validation: {max_age_s: 3153600000}\n"  // the wiki's examples are from 2019
                             "tenants:\n"
                             "  - name: fleet\n"
                             "    devices:\n"
                             "      - {id: \"" + std::string(kImei) + "\", device_type: fmb, token_sha256: " + gateway::sha256_hex("unused-1") + "}\n" +
                             "      - {id: \"" + std::string(kUdpImei) + "\", device_type: fmb, token_sha256: " + gateway::sha256_hex("unused-2") + "}\n");
  gateway.start();
  gateway.wait_ready();
  const std::string sensors = "it." + run + ".fleet.sensor";

  {
    Socket tracker(SOCK_STREAM, tcp_port);
    tracker.send(bytes(kHandshake));
    REQUIRE(tracker.receive(1) == std::string("\x01", 1));

    CHECK(ack_latency(tracker, bytes(kCodec8), std::string("\x00\x00\x00\x01", 4)) >= after_commit);
    CHECK(committed_now(sensors) == 1);

    CHECK(ack_latency(tracker, bytes(kCodec8TwoRecords), std::string("\x00\x00\x00\x02", 4)) >= after_commit);
    CHECK(committed_now(sensors) == 3);

    CHECK(ack_latency(tracker, bytes(kCodec8Extended), std::string("\x00\x00\x00\x01", 4)) >= after_commit);
    CHECK(committed_now(sensors) == 4);

    // The tracker saw no ack (say) and resends the first frame: acknowledged, not written again.
    tracker.send(bytes(kCodec8));
    REQUIRE(tracker.receive(4) == std::string("\x00\x00\x00\x01", 4));

    // A corrupted frame: no ack, the connection is closed.
    std::string corrupt = bytes(kCodec8);
    corrupt[20] ^= 0x40;
    tracker.send(corrupt);
    CHECK(tracker.closed_by_peer());
  }
  {
    Socket stranger(SOCK_STREAM, tcp_port);
    stranger.send(bytes("000F333539363332313034323132333435"));  // IMEI 359632104212345, not provisioned
    CHECK(stranger.receive(1) == std::string("\x00", 1));
    CHECK(stranger.closed_by_peer());
  }
  {
    Socket tracker(SOCK_DGRAM, udp_port);
    CHECK(ack_latency(tracker, bytes(kUdpCodec8), bytes("0005CAFE010501")) >= after_commit);
    CHECK(committed_now(sensors) == 5);
  }

  const auto copies = testing::committed_copies(testing::kafka_bootstrap(), sensors, 5,
                                                testing::ExpectedOrigin{"fleet", envelope::SourceProtocol::tcp});
  CHECK(copies.size() == 5);
  for (const auto& [msg_id, count] : copies) CHECK_MESSAGE(count == 1, msg_id);

  const std::string metrics = testing::curl_get(gateway.url("/metrics")).body;
  CHECK(metrics.find("telegate_tracker_logins_total{outcome=\"unknown_imei\",protocol=\"teltonika\"} 1") != std::string::npos);
  CHECK(metrics.find("telegate_tracker_frames_total{outcome=\"bad_checksum\",protocol=\"teltonika\"} 1") != std::string::npos);
  CHECK(metrics.find("telegate_tracker_frames_total{outcome=\"acked\",protocol=\"teltonika\"} 5") != std::string::npos);
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);
}
