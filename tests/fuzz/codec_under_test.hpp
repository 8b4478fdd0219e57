// The codec a fuzz target or conformance test exercises: TELEGATE_CODEC_UNDER_TEST names it and
// TELEGATE_CODEC_OPTIONS, when not empty, is the YAML file of its codec_options.
#pragma once

#include <memory>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Throws (aborting the fuzzer or failing the test) if the codec or its options are unusable.
std::unique_ptr<Codec> make_codec_under_test(const DecodeLimits& limits = {});

}  // namespace telegate::codecs
