// telegate.v1.Envelope written straight from a canonical record, without the generated message.
//
// Why: filling the reusable v1::Envelope and calling AppendToString cost ~0.2 µs per record on
// the HTTP path (field setters, ByteSizeLong, a UTF-8 re-check of every string, arena string
// plumbing); this writer emits the same bytes in one sizing pass and one writing pass
// (envelope/README.md has the figures). The schema stays envelope.proto: a new field there
// must be added here too, and tests/unit/envelope_test.cpp fails until it is (it compares the
// field numbers below with the descriptors, and the bytes with Envelope::SerializeToString).
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "telegate/envelope/envelope.hpp"

namespace telegate::envelope {

// The field numbers this writer knows, per message of envelope.proto.
inline constexpr std::array kEnvelopeFieldNumbers{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20, 21};
inline constexpr std::array kLocationFieldNumbers{1, 2, 3, 4, 5, 6, 7};
inline constexpr std::array kSensorFieldNumbers{1, 2};
inline constexpr std::array kSensorReadingFieldNumbers{1, 2, 3};
inline constexpr std::array kAttributeFieldNumbers{1, 2};

// The parts of one envelope that do not come from the record itself.
struct EnvelopeIdentity {
  std::string_view msg_id;  // the record's, or the one the builder generated
  bool msg_id_generated = false;
};

// Replaces `out` with the Protobuf encoding of the envelope, byte for byte what
// v1::Envelope::SerializeToString gives for the same fields.
//
// UTF-8: Protobuf checks every proto3 string on serialization and logs (never refuses) one that
// is not UTF-8. Here only strings that nothing upstream checked are looked at: device_id,
// msg_id and reading names passed codecs::validate (printable ASCII), the context's strings are
// checked once per tenant/device type by the builder; units and attributes come from codecs of
// which some do not check (SenML CBOR, proto2 schemas of protobuf-dynamic), so they are checked
// here — an all-ASCII word test, the full check only for non-ASCII text — and logged the
// same way.
void write_protobuf(const codecs::CanonicalRecord& record, const EnvelopeContext& context, const EnvelopeIdentity& identity,
                    std::string& out);

// Logs through libprotobuf, as its own serializer would, if `text` is not UTF-8.
void check_utf8(std::string_view text, const char* field_name);

}  // namespace telegate::envelope
