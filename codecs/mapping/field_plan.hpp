// Declarative field mappings, shared by the codecs that read a device's own schema: `mapping`
// (JSON pointers) and `protobuf_dynamic` (descriptor paths). A field plan says which canonical
// field (or sensor reading) a source value feeds and how it is converted: scale, offset, unit,
// default, constant, required, min/max.
//
// Split in two on purpose: read_record_plan() runs on the control plane when a device type is
// defined (it throws OptionError naming the dotted key); apply() runs per value on the data path
// and only does arithmetic on the pre-read plan (no option look-ups, no throwing). A RecordPlan
// is immutable once compiled and shared by every worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/options.hpp"
#include "telegate/codecs/record.hpp"
#include "telegate/codecs/units.hpp"

namespace telegate::codecs::mapping {

// The canonical field a plan writes; `reading` appends a sensor reading.
enum class Target : std::uint8_t { lat, lon, alt, speed, heading, accuracy, battery, time, msg_id, device_id, reading };

inline constexpr std::string_view kFieldNames = "lat, lon, alt, speed, heading, accuracy, battery, time, msg_id, device_id";
inline constexpr std::string_view kTimeUnitNames = "s, ms, us, auto, rfc3339";

std::optional<Target> parse_target(std::string_view name) noexcept;
bool is_text(Target target) noexcept;      // msg_id, device_id
bool is_location(Target target) noexcept;  // lat … battery: only in a location record

enum class TimeFormat : std::uint8_t { epoch, rfc3339 };

// A value as its source found it, before conversion. `text` points into the codec's parse
// state and is only valid until the codec looks up the next value.
struct RawValue {
  enum class Kind : std::uint8_t { absent, number, signed_integer, unsigned_integer, boolean, text, other };
  Kind kind = Kind::absent;
  double number = 0;
  std::int64_t signed_integer = 0;
  std::uint64_t unsigned_integer = 0;
  bool boolean = false;
  std::string_view text;  // the text, or for `other` what the value is ("an object")

  static RawValue of_text(std::string_view value) { return {Kind::text, 0, 0, 0, false, value}; }
  static RawValue of_number(double value) { return {Kind::number, value, 0, 0, false, {}}; }
  static RawValue of_signed(std::int64_t value) { return {Kind::signed_integer, 0, value, 0, false, {}}; }
  static RawValue of_unsigned(std::uint64_t value) { return {Kind::unsigned_integer, 0, 0, value, false, {}}; }
  static RawValue of_boolean(bool value) { return {Kind::boolean, 0, 0, 0, value, {}}; }
  static RawValue of_other(std::string_view what) { return {Kind::other, 0, 0, 0, false, what}; }
};

// Why one record is rejected: the canonical field ("lat", "readings.temperature") and reason.
struct FieldProblem {
  std::string field;
  std::string reason;
};

// One canonical field (or reading) and how to fill it. Numbers are converted as
// (raw × scale + offset) × unit factor; min/max, default and constant are canonical values
// (degrees, m/s, metres, percent; epoch milliseconds for time).
struct FieldPlan {
  Target target = Target::lat;
  std::string field;   // as errors name it: "lat", "readings.temperature"
  std::string source;  // the operator's pointer or path, quoted in errors
  bool has_source = false;
  bool required = false;
  double scale = 1;
  double offset = 0;
  double unit_factor = 1;  // speed unit → m/s
  TimeFormat time_format = TimeFormat::epoch;
  EpochUnit epoch_unit = EpochUnit::automatic;
  std::optional<double> min;
  std::optional<double> max;
  std::optional<double> number_constant;
  std::optional<double> number_default;
  std::optional<std::string> text_constant;
  std::optional<std::string> text_default;
  std::string reading_name;
  std::string unit_label;
};

struct RecordPlan {
  MessageType message_type = MessageType::location;
  std::vector<FieldPlan> fields;  // fields, then readings, then constants; each codec keeps its
                                  // compiled sources in a vector parallel to this one
};

// Called for each field that has a source, with the field's index in RecordPlan::fields, its
// plan (target, units: what the source must be able to hold) and the dotted key of the source
// option. The codec compiles and stores the source, or throws OptionError naming `key`.
using SourceCompiler = std::function<void(std::size_t index, const FieldPlan& field, const std::string& key)>;

// Reads `message_type`, `fields`, `readings` and `constants` from `options`; each field's source
// is the option `source_key` ("pointer", "path"). Leaves the codec's own keys and finish() to the
// caller. Throws OptionError naming the key (also for more readings than limits.max_readings).
RecordPlan read_record_plan(OptionReader& options, std::string_view source_key, const SourceCompiler& compile_source,
                            const DecodeLimits& limits);

// Converts `raw` as `plan` says and stores it in `record`; a problem if the record cannot be
// accepted. Never throws.
std::optional<FieldProblem> apply(const FieldPlan& plan, const RawValue& raw, CanonicalRecord& record,
                                  const DecodeLimits& limits);

// Checks that hold for the record as a whole once every field is applied (a sensor record needs
// a reading).
std::optional<FieldProblem> finish_record(const RecordPlan& plan, const CanonicalRecord& record);

// Fills `record` (whose type and authenticated device_id the caller set) field by field;
// lookup(i) returns the raw value of fields[i]'s source. Stops at the first problem.
template <class Lookup>
std::optional<FieldProblem> build_record(const RecordPlan& plan, CanonicalRecord& record, const DecodeLimits& limits,
                                         Lookup&& lookup) {
  for (std::size_t i = 0; i < plan.fields.size(); ++i) {
    const FieldPlan& field = plan.fields[i];
    const RawValue raw = field.has_source ? lookup(i) : RawValue{};
    if (auto problem = apply(field, raw, record, limits)) return problem;
  }
  return finish_record(plan, record);
}

}  // namespace telegate::codecs::mapping
