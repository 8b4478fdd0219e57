#include <doctest/doctest.h>

#include "coap/coap_protocol.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"

using namespace telegate::gateway;

TEST_CASE("CoAP Content-Formats map to the media types the codecs read") {
  CHECK(coap::media_type_for(50) == "application/json");
  CHECK(coap::media_type_for(60) == "application/cbor");
  CHECK(coap::media_type_for(110) == "application/senml+json");
  CHECK(coap::media_type_for(112) == "application/senml+cbor");
  CHECK(coap::media_type_for(42) == "application/x-protobuf");
  CHECK_FALSE(coap::media_type_for(0).has_value());  // text/plain
  CHECK_FALSE(coap::media_type_for(111).has_value());
  CHECK_FALSE(coap::media_type_for(65535).has_value());
}

TEST_CASE("the t= Uri-Query item is the token, wherever it stands") {
  CHECK(coap::query_token("t=abc") == "abc");
  CHECK(coap::query_token("x=1&t=abc&y=2") == "abc");
  CHECK(coap::query_token("x=1&tt=abc") == "");
  CHECK(coap::query_token("t=") == "");
  CHECK(coap::query_token("") == "");
  CHECK(coap::query_token("&&t=a&t=b") == "a");
}

TEST_CASE("recent messages: a repeated (endpoint, id) is found; other endpoints and ids are not") {
  coap::RecentMessages recent(3, std::chrono::seconds(10));
  const auto t0 = coap::RecentMessages::Clock::now();
  const auto a1 = coap::RecentMessages::key("endpoint-a", 1);
  const auto b1 = coap::RecentMessages::key("endpoint-b", 1);
  const auto a2 = coap::RecentMessages::key("endpoint-a", 2);
  CHECK(recent.find(a1, t0) == nullptr);
  coap::RecentAnswer& answer = recent.insert(a1, t0);
  answer.state = coap::RecentAnswer::State::piggybacked;
  answer.code = 0x44;  // 2.04
  REQUIRE(recent.find(a1, t0) != nullptr);
  CHECK(recent.find(a1, t0)->code == 0x44);
  CHECK(recent.find(b1, t0) == nullptr);
  CHECK(recent.find(a2, t0) == nullptr);

  SUBCASE("entries expire after the lifetime") {
    CHECK(recent.find(a1, t0 + std::chrono::seconds(11)) == nullptr);
    CHECK(recent.size() == 0);
  }
  SUBCASE("the oldest go first when the cache is full") {
    recent.insert(b1, t0);
    recent.insert(a2, t0);
    recent.insert(coap::RecentMessages::key("endpoint-c", 9), t0);
    CHECK(recent.size() == 3);
    CHECK(recent.find(a1, t0) == nullptr);
    CHECK(recent.find(b1, t0) != nullptr);
  }
}

TEST_CASE("Block1 option values: number, More, size; BERT is refused on UDP") {
  const auto block = coap::decode_block1(0x2a);  // num 2, M=1, SZX 2 (64 bytes)
  REQUIRE(block.has_value());
  CHECK(block->num == 2);
  CHECK(block->more);
  CHECK(block->size() == 64);
  CHECK(block->offset() == 128);
  CHECK(block->encode() == 0x2a);
  CHECK_FALSE(coap::decode_block1(0x07).has_value());
  CHECK_FALSE(coap::decode_block1(0x1000000).has_value());
}

namespace {
// Block `num` of 64-byte blocks (SZX 2), filled with `fill`.
std::string chunk(char fill, std::size_t size = 64) { return std::string(size, fill); }
coap::Block1 b64(std::uint32_t num, bool more) { return coap::Block1{num, more, 2}; }
}  // namespace

TEST_CASE("Block1 reassembly: in order, bounded per body, per table and per endpoint") {
  using coap::BlockVerdict;
  const auto t0 = coap::Block1Transfers::Clock::now();
  coap::Block1Transfers::Limits limits;
  limits.max_body_bytes = 200;
  limits.max_transfers = 3;
  limits.max_total_bytes = 1000;
  limits.idle_timeout = std::chrono::seconds(30);
  coap::Block1Transfers table(limits);

  SUBCASE("blocks in order make the body; the table is empty afterwards") {
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(1, true), std::nullopt, chunk('b'), t0).verdict == BlockVerdict::next);
    CHECK(table.transfers() == 1);
    CHECK(table.bytes() >= 128);
    const auto done = table.add("ep", "/v1", b64(2, false), std::nullopt, "tail", t0);
    CHECK(done.verdict == BlockVerdict::complete);
    CHECK(done.body == chunk('a') + chunk('b') + "tail");
    CHECK(table.transfers() == 0);
    CHECK(table.bytes() == 0);
  }
  SUBCASE("refused at the block that crosses max_body_bytes, and the buffer is freed") {
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(1, true), std::nullopt, chunk('b'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(2, true), std::nullopt, chunk('c'), t0).verdict == BlockVerdict::next);  // 192
    CHECK(table.add("ep", "/v1", b64(3, true), std::nullopt, chunk('d'), t0).verdict == BlockVerdict::too_large);
    CHECK(table.transfers() == 0);
    CHECK(table.bytes() == 0);
    // What follows belongs to no transfer.
    CHECK(table.add("ep", "/v1", b64(4, false), std::nullopt, "x", t0).verdict == BlockVerdict::incomplete);
  }
  SUBCASE("Size1 above the limit is refused at block 0, before anything is stored") {
    CHECK(table.add("ep", "/v1", b64(0, true), 100'000, chunk('a'), t0).verdict == BlockVerdict::too_large);
    CHECK(table.transfers() == 0);
    CHECK(table.add("ep", "/v1", b64(0, true), 150, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.bytes() <= limits.max_body_bytes);
  }
  SUBCASE("a gap, a block without block 0, or an old block: 4.08 and the transfer is gone") {
    CHECK(table.add("ep", "/v1", b64(1, true), std::nullopt, chunk('b'), t0).verdict == BlockVerdict::incomplete);
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(2, true), std::nullopt, chunk('c'), t0).verdict == BlockVerdict::incomplete);
    CHECK(table.transfers() == 0);
  }
  SUBCASE("a non-final block must be exactly its size") {
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a', 10), t0).verdict == BlockVerdict::bad_block);
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(1, true), std::nullopt, chunk('b', 63), t0).verdict == BlockVerdict::bad_block);
    CHECK(table.transfers() == 0);
  }
  SUBCASE("block 0 starts over; a single block with M=0 is a whole body") {
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('z'), t0).verdict == BlockVerdict::next);
    const auto done = table.add("ep", "/v1", b64(1, false), std::nullopt, "!", t0);
    CHECK(done.body == chunk('z') + "!");
    const auto single = table.add("ep", "/v1", b64(0, false), std::nullopt, "whole", t0);
    CHECK(single.verdict == BlockVerdict::complete);
    CHECK(single.body == "whole");
    CHECK(table.transfers() == 0);
  }
  SUBCASE("transfers are told apart by endpoint and request; the table's count is bounded") {
    CHECK(table.add("ep1", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep2", "/v1", b64(0, true), std::nullopt, chunk('b'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep1", "/trk", b64(0, true), std::nullopt, chunk('c'), t0).verdict == BlockVerdict::next);
    CHECK(table.add("ep3", "/v1", b64(0, true), std::nullopt, chunk('d'), t0).verdict == BlockVerdict::busy);
    CHECK(table.transfers() == 3);
    CHECK(table.add("ep2", "/v1", b64(1, false), std::nullopt, "2", t0).body == chunk('b') + "2");
    CHECK(table.add("ep1", "/v1", b64(1, false), std::nullopt, "1", t0).body == chunk('a') + "1");
    CHECK(table.add("ep1", "/trk", b64(1, false), std::nullopt, "t", t0).body == chunk('c') + "t");
  }
  SUBCASE("the bytes of all transfers together are bounded") {
    limits.max_transfers = 100;
    limits.max_total_bytes = 300;  // room for one 200-byte body, not two
    coap::Block1Transfers small(limits);
    CHECK(small.add("ep1", "/v1", b64(0, true), 200, chunk('a'), t0).verdict == BlockVerdict::next);
    CHECK(small.add("ep2", "/v1", b64(0, true), 200, chunk('b'), t0).verdict == BlockVerdict::busy);
    CHECK(small.bytes() <= 300);
  }
  SUBCASE("one endpoint holds at most kPerEndpoint transfers") {
    limits.max_transfers = 100;
    coap::Block1Transfers wide(limits);
    for (std::size_t i = 0; i < coap::Block1Transfers::kPerEndpoint; ++i) {
      CHECK(wide.add("ep", "tag" + std::to_string(i), b64(0, true), std::nullopt, chunk('a'), t0).verdict ==
            BlockVerdict::next);
    }
    CHECK(wide.add("ep", "tag-more", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::busy);
    CHECK(wide.add("other", "tag0", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
  }
  SUBCASE("idle transfers expire and free their bytes") {
    CHECK(table.add("ep", "/v1", b64(0, true), std::nullopt, chunk('a'), t0).verdict == BlockVerdict::next);
    table.expire(t0 + std::chrono::seconds(31));
    CHECK(table.transfers() == 0);
    CHECK(table.bytes() == 0);
    CHECK(table.add("ep", "/v1", b64(1, false), std::nullopt, "x", t0 + std::chrono::seconds(31)).verdict ==
          BlockVerdict::incomplete);
  }
}

TEST_CASE("DTLS-PSK identities: bare device id when unambiguous, tenant/id always; key = hex token digest") {
  const std::string yaml = "device_types: [{name: tracker}]\n"
                           "tenants:\n"
                           "  - name: acme\n"
                           "    devices:\n"
                           "      - {id: truck-1, device_type: tracker, token_sha256: " + sha256_hex("t1") + "}\n" +
                           "      - {id: shared, device_type: tracker, token_sha256: " + sha256_hex("t2") + "}\n" +
                           "  - name: globex\n"
                           "    devices:\n"
                           "      - {id: shared, device_type: tracker, token_sha256: " + sha256_hex("t3") + "}\n" +
                           "      - {id: acme/truck-1, device_type: tracker, token_sha256: " + sha256_hex("t4") + "}\n";
  const DeviceRegistry registry(parse_config(yaml));
  const auto truck = registry.by_psk_identity("truck-1");
  REQUIRE(truck.has_value());
  CHECK(truck->device->tenant == "acme");
  CHECK(truck->key == sha256_hex("t1"));
  CHECK_FALSE(registry.by_psk_identity("shared").has_value());  // two tenants: ambiguous
  const auto globex = registry.by_psk_identity("globex/shared");
  REQUIRE(globex.has_value());
  CHECK(globex->device->tenant == "globex");
  CHECK(globex->key == sha256_hex("t3"));
  // "acme/truck-1" is both acme's truck-1 and globex's bare id: refused rather than guessed.
  CHECK_FALSE(registry.by_psk_identity("acme/truck-1").has_value());
  CHECK_FALSE(registry.by_psk_identity("").has_value());
  CHECK_FALSE(registry.by_psk_identity("nobody").has_value());
}

TEST_CASE("coap config: defaults, device-type paths, and errors that name the key") {
  const GatewayConfig defaults = parse_config("device_types: [{name: t}]\n");
  CHECK_FALSE(defaults.coap.enabled);
  CHECK(defaults.coap.port == 5683);
  CHECK(defaults.coap.dtls_port == 5684);
  CHECK(defaults.coap.allow_token_query);

  const GatewayConfig config = parse_config(
      "coap: {enabled: true, port: 6000, dtls: true, dtls_port: 6001, allow_token_query: false, max_body_bytes: 2048, "
      "piggyback_wait_ms: 10}\n"
      "device_types: [{name: env, codec: senml, coap: {path: /sensors/env}}]\n");
  CHECK(config.coap.enabled);
  CHECK(config.coap.port == 6000);
  CHECK_FALSE(config.coap.allow_token_query);
  CHECK(config.coap.piggyback_wait == std::chrono::milliseconds(10));
  CHECK(defaults.coap.max_block_transfers == 256);
  CHECK(defaults.coap.block_transfer_memory_bytes == 16u << 20);
  CHECK(defaults.coap.socket_receive_buffer_bytes == 4u << 20);
  REQUIRE(config.device_types[0].coap.has_value());
  CHECK(config.device_types[0].coap->path == "/sensors/env");

  auto error_of = [](const std::string& yaml) {
    try {
      (void)parse_config(yaml);
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  CHECK(error_of("coap: {prot: 1}\n").find("coap.prot") != std::string::npos);
  CHECK(error_of("coap: {enabled: true, dtls: true, port: 7000, dtls_port: 7000}\n").find("coap.dtls_port") !=
        std::string::npos);
  CHECK(error_of("coap: {piggyback_wait_ms: 99999}\n").find("coap.piggyback_wait_ms") != std::string::npos);
  CHECK(error_of("coap: {max_body_bytes: 4096, block_transfer_memory_bytes: 1024}\n")
            .find("coap.block_transfer_memory_bytes") != std::string::npos);
  CHECK(error_of("device_types: [{name: x, coap: {path: /v1/telemetry}}]\n").find("coap.path") != std::string::npos);
  CHECK(error_of("device_types: [{name: x, coap: {path: nope}}]\n").find("coap.path") != std::string::npos);
}
