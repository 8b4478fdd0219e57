// The envelope's JSON rendering, shared by EnvelopeBuilder (json format) and render_json().
#pragma once

#include <string>

#include "telegate/v1/envelope.pb.h"

namespace telegate::envelope {

// Appends `message` as one line of JSON with the proto's snake_case field names. Hand-written
// rather than google::protobuf::util::MessageToJsonString: this runs per record on the hot
// path, and the reflection-based printer allocates per field.
void write_json(const v1::Envelope& message, std::string& out);

}  // namespace telegate::envelope
