// The codec contract (docs/component-spec.md, "Codecs"), checked for one codec at a time:
// TELEGATE_CODEC_UNDER_TEST names it, TELEGATE_CODEC_SAMPLES holds its samples.
//   *.valid.<ext>    decode with records and no per-record error
//   *.invalid.<ext>  a CodecError or at least one per-record error, never a crash
// <ext> picks the content type whose subtype (without "x-") is <ext>: json, ndjson, cbor, …
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "../fuzz/codec_under_test.hpp"
#include "telegate/codecs/codec.hpp"

using namespace telegate::codecs;
namespace fs = std::filesystem;

namespace {

struct Sample {
  fs::path path;
  std::string body;
  std::string content_type;
  bool valid;
};

std::unique_ptr<Codec> make_codec() { return make_codec_under_test(); }

std::optional<std::string> content_type_for(const Codec& codec, const std::string& extension) {
  for (const std::string_view type : codec.content_types()) {
    std::string_view subtype = type.substr(type.find('/') + 1);
    if (subtype.starts_with("x-")) subtype.remove_prefix(2);
    if (subtype == extension) return std::string(type);
  }
  return std::nullopt;
}

std::vector<Sample> samples(const Codec& codec) {
  std::vector<Sample> found;
  for (const auto& entry : fs::directory_iterator(TELEGATE_CODEC_SAMPLES)) {
    const std::string name = entry.path().filename().string();
    const bool valid = name.find(".valid.") != std::string::npos;
    if (!valid && name.find(".invalid.") == std::string::npos) continue;
    const auto content_type = content_type_for(codec, entry.path().extension().string().substr(1));
    REQUIRE_MESSAGE(content_type.has_value(), "no content type of the codec matches " << name);
    std::ifstream file(entry.path(), std::ios::binary);
    found.push_back({entry.path(), std::string(std::istreambuf_iterator<char>(file), {}), *content_type, valid});
  }
  return found;
}

struct Result {
  bool ok;
  std::size_t records;
  std::size_t errors;
};

Result decode(Codec& codec, const std::string& body, const std::string& content_type) {
  DecodedBatch batch;
  const auto result = codec.decode(body, DecodeContext{"tenant", "device", "test", content_type}, batch);
  // Indices are positions of records in the payload: in order and never repeated.
  std::size_t next = 0;
  for (const FieldError& error : batch.errors()) {
    CHECK_MESSAGE(error.index >= next, "error index " << error.index << " out of order");
    CHECK_MESSAGE(error.index < body.size(), "error index " << error.index << " past the payload");
    CHECK_MESSAGE(!error.reason.empty(), "a per-record error must say why");
    next = error.index + 1;
  }
  if (!result) CHECK_MESSAGE(!result.error().message.empty(), "a codec error must name the problem");
  return {result.has_value(), batch.records().size(), batch.errors().size()};
}

}  // namespace

TEST_CASE("samples decode as their names promise") {
  auto codec = make_codec();
  const auto all = samples(*codec);
  std::size_t valid = 0, invalid = 0;
  for (const Sample& sample : all) {
    CAPTURE(sample.path.filename().string());
    const Result result = decode(*codec, sample.body, sample.content_type);
    if (sample.valid) {
      ++valid;
      CHECK(result.ok);
      CHECK(result.records > 0);
      CHECK(result.errors == 0);
    } else {
      ++invalid;
      CHECK((!result.ok || result.errors > 0));
    }
  }
  CHECK_MESSAGE(valid > 0, "a codec needs valid samples");
  CHECK_MESSAGE(invalid > 0, "a codec needs invalid samples");
}

TEST_CASE("every truncation of a valid sample is an error or records, never a crash") {
  auto codec = make_codec();
  for (const Sample& sample : samples(*codec)) {
    if (!sample.valid) continue;
    CAPTURE(sample.path.filename().string());
    for (std::size_t length = 0; length < sample.body.size(); ++length) {
      const Result result = decode(*codec, sample.body.substr(0, length), sample.content_type);
      CHECK((!result.ok || result.records + result.errors > 0 || length == 0));
    }
  }
}

TEST_CASE("one codec instance gives the same answer whatever it decoded before") {
  auto codec = make_codec();
  const auto all = samples(*codec);
  std::vector<Result> first;
  for (const Sample& sample : all) first.push_back(decode(*codec, sample.body, sample.content_type));
  for (std::size_t round = 0; round < 2; ++round) {
    for (std::size_t i = all.size(); i-- > 0;) {
      CAPTURE(all[i].path.filename().string());
      const Result again = decode(*codec, all[i].body, all[i].content_type);
      CHECK(again.ok == first[i].ok);
      CHECK(again.records == first[i].records);
      CHECK(again.errors == first[i].errors);
    }
  }
}

TEST_CASE("an empty body and a foreign content type are refused by name") {
  auto codec = make_codec();
  DecodedBatch batch;
  const std::string content_type(codec->content_types().front());
  const auto empty = codec->decode("", DecodeContext{"t", "d", "test", content_type}, batch);
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().code == CodecErrc::empty_body);

  batch.clear();
  const auto foreign = codec->decode("x", DecodeContext{"t", "d", "test", "application/vnd.nobody-reads-this"}, batch);
  REQUIRE_FALSE(foreign.has_value());
  CHECK(foreign.error().code == CodecErrc::unsupported_content_type);
}
