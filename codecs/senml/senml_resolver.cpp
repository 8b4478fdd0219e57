#include "senml/senml_resolver.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

namespace telegate::codecs::senml {

namespace {

// RFC 8428 §4.5.3: times below 2**28 seconds are relative to the receiver's clock.
constexpr double kRelativeTimeLimit = 268435456.0;

struct LabelInfo {
  std::string_view name;
  Kind kind;
  std::int64_t cbor;
};

// RFC 8428 Table 4, in Label order.
constexpr std::array<LabelInfo, 15> kLabels{{
    {"bver", Kind::number, -1}, {"bn", Kind::text, -2},   {"bt", Kind::number, -3},  {"bu", Kind::text, -4},
    {"bv", Kind::number, -5},   {"bs", Kind::number, -6}, {"n", Kind::text, 0},      {"u", Kind::text, 1},
    {"v", Kind::number, 2},     {"vs", Kind::any, 3},     {"vb", Kind::boolean, 4},  {"s", Kind::number, 5},
    {"t", Kind::number, 6},     {"ut", Kind::number, 7},  {"vd", Kind::any, 8},
}};

bool is_base(Label label) noexcept { return label <= Label::bs; }

// RFC 8428 §4.5.1: a resolved name starts with a letter or digit and continues with letters,
// digits and - : . / _
bool is_valid_name(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  return !name.empty() && alnum(name.front()) && std::all_of(name.begin(), name.end(), [&](char c) {
    return alnum(c) || c == '-' || c == ':' || c == '.' || c == '/' || c == '_';
  });
}

}  // namespace

Kind kind_of(Label label) noexcept {
  const auto i = static_cast<std::size_t>(label);
  return i < kLabels.size() ? kLabels[i].kind : Kind::any;
}

std::string_view json_name(Label label) noexcept {
  const auto i = static_cast<std::size_t>(label);
  return i < kLabels.size() ? kLabels[i].name : std::string_view{};
}

Label label_for_name(std::string_view key) noexcept {
  for (std::size_t i = 0; i < kLabels.size(); ++i) {
    if (kLabels[i].name == key) return static_cast<Label>(i);
  }
  return key.ends_with('_') ? Label::must_understand : Label::extension;
}

Label label_for_cbor(std::int64_t label) noexcept {
  for (std::size_t i = 0; i < kLabels.size(); ++i) {
    if (kLabels[i].cbor == label) return static_cast<Label>(i);
  }
  return Label::extension;
}

void Record::reset() noexcept {
  base_name_.reset();
  base_unit_.reset();
  base_time_.reset();
  base_value_.reset();
  base_sum_.reset();
  name_.reset();
  unit_.reset();
  value_.reset();
  boolean_.reset();
  sum_.reset();
  time_ = 0;
  has_text_value_ = false;
  regular_ = false;
  problem_field_.reset();
  problem_reason_.clear();
}

void Record::seen(Label label) noexcept {
  if (!is_base(label)) regular_ = true;
}

void Record::problem(std::string_view field, std::string reason) {
  if (problem_field_) return;
  problem_field_ = std::string(field);
  problem_reason_ = std::move(reason);
}

void Record::number(Label label, std::string_view key, double value) {
  seen(label);
  if (kind_of(label) != Kind::number) return other(label, key);
  if (!std::isfinite(value)) return problem(key, "must be a finite number");
  switch (label) {
    case Label::bt: base_time_ = value; break;
    case Label::bv: base_value_ = value; break;
    case Label::bs: base_sum_ = value; break;
    case Label::v: value_ = value; break;
    case Label::s: sum_ = value; break;
    case Label::t: time_ = value; break;
    default: break;  // bver, ut: read and checked, not used
  }
}

void Record::text(Label label, std::string_view key, std::string_view value) {
  seen(label);
  if (kind_of(label) != Kind::text) return other(label, key);
  if (value.size() > limits_->max_string_bytes) {
    return problem(key, fmt::format("must be at most {} bytes", limits_->max_string_bytes));
  }
  switch (label) {
    case Label::bn: base_name_.emplace(value); break;
    case Label::bu: base_unit_.emplace(value); break;
    case Label::n: name_.emplace(value); break;
    case Label::u: unit_.emplace(value); break;
    default: break;
  }
}

void Record::boolean(Label label, std::string_view key, bool value) {
  seen(label);
  if (kind_of(label) != Kind::boolean) return other(label, key);
  boolean_ = value;
}

void Record::other(Label label, std::string_view key) {
  seen(label);
  switch (kind_of(label)) {
    case Kind::number: return problem(key, "must be a finite number");
    case Kind::text: return problem(key, "must be a string");
    case Kind::boolean: return problem(key, "must be true or false");
    case Kind::any: break;
  }
  if (label == Label::vs || label == Label::vd) {
    has_text_value_ = true;
  } else if (label == Label::must_understand) {
    problem(key, "is a must-understand field (RFC 8428 §4.4) that telegate does not understand");
  }
  // Other unknown fields are extensions that may be ignored (RFC 8428 §4.4).
}

Resolver::Resolver(const DecodeLimits& limits, const DecodeContext& context, DecodedBatch& out)
    : limits_(limits),
      context_(context),
      out_(out),
      now_s_(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()) {}

CodecError Resolver::too_many_records() const {
  return CodecError{CodecErrc::too_many_records,
                    fmt::format("more than {} SenML records in one pack", limits_.max_records), std::nullopt};
}

void Resolver::reject(std::size_t index, std::string field, std::string reason) {
  out_.reject(index, std::move(field), std::move(reason));
  group_ = nullptr;  // a rejected record breaks a run of same-time readings
}

void Resolver::add(std::size_t index, const Record& record) {
  // Base fields apply from this record on, even when the record itself is refused (§4.6).
  if (record.base_name_) base_name_ = *record.base_name_;
  if (record.base_unit_) base_unit_ = *record.base_unit_;
  if (record.base_time_) base_time_ = *record.base_time_;
  if (record.base_value_) base_value_ = *record.base_value_;
  if (record.base_sum_) base_sum_ = *record.base_sum_;

  if (record.problem_field_) return reject(index, *record.problem_field_, record.problem_reason_);
  if (!record.regular_) return;  // a record of base fields only sets the bases
  if (record.has_text_value_) {
    return reject(index, "vs", "string and data values (vs, vd) have no numeric sensor reading and are not accepted");
  }
  if (!record.value_ && !record.boolean_ && !record.sum_) {
    return reject(index, "v", "a SenML record needs a value (v or vb) or a sum (s)");
  }
  std::string name = base_name_ + record.name_.value_or("");
  if (!is_valid_name(name)) {
    return reject(index, "n",
                  fmt::format("the resolved name '{}' is not a valid SenML name (RFC 8428 §4.5.1)", name.substr(0, 64)));
  }
  double time_s = base_time_ + record.time_;
  if (time_s < kRelativeTimeLimit) time_s += now_s_;
  const double time_ms = std::round(time_s * 1000.0);
  if (!std::isfinite(time_ms) || std::abs(time_ms) > 1e15) return reject(index, "t", "the resolved time is out of range");
  const double value = record.value_     ? base_value_ + *record.value_
                       : record.boolean_ ? (*record.boolean_ ? 1.0 : 0.0)
                                         : base_sum_ + *record.sum_;
  const auto event_time_ms = static_cast<std::int64_t>(time_ms);
  if (!group_ || group_->event_time_ms != event_time_ms || group_->readings.size() >= limits_.max_readings) {
    group_ = &out_.append(index);
    group_->device_id.assign(context_.device_id);
    group_->type = MessageType::sensor;
    group_->event_time_ms = event_time_ms;
  }
  group_->readings.push_back(SensorReading{std::move(name), value, record.unit_.value_or(base_unit_)});
}

}  // namespace telegate::codecs::senml
