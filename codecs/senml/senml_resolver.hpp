// What every SenML front end (JSON, CBOR) shares: the RFC 8428 labels and what type each takes,
// one record's fields as a front end read them, and the resolution of a pack into canonical
// records (RFC 8428 §4.6). A front end only parses its syntax; the rules live here once, so the
// JSON and CBOR codecs cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs::senml {

// The SenML fields of RFC 8428 Table 4 (JSON names, CBOR integer labels), plus the two kinds of
// field the RFC leaves to extensions (§4.4).
enum class Label : std::uint8_t {
  bver, bn, bt, bu, bv, bs, n, u, v, vs, vb, s, t, ut, vd,
  extension,         // unknown, may be ignored
  must_understand,   // unknown and named with a trailing '_': the record must be refused
};

// The value type a label takes.
// `any`: the value is not read (vs and vd have no numeric reading; extensions are ignored).
enum class Kind : std::uint8_t { number, text, boolean, any };

Kind kind_of(Label label) noexcept;
std::string_view json_name(Label label) noexcept;  // "bn", …; empty for the extension kinds
// A JSON key (or a CBOR text label) → its label: JSON names only known fields by name.
Label label_for_name(std::string_view key) noexcept;
// A CBOR integer label (RFC 8428 §6, Table 4) → its label; unknown integers are extensions.
Label label_for_cbor(std::int64_t label) noexcept;

// One record's fields as a front end read them, before resolution. A front end calls one setter
// per field; the first problem found is kept (one error per record, as for the other codecs).
//
// Lifecycle: owned by the decode() call of one codec instance (one worker thread), reset() per
// record so its strings keep their capacity.
class Record {
 public:
  explicit Record(const DecodeLimits& limits) : limits_(&limits) {}

  void reset() noexcept;
  // A field whose value was read as the type its label takes. `key` names it in errors.
  void number(Label label, std::string_view key, double value);
  void text(Label label, std::string_view key, std::string_view value);
  void boolean(Label label, std::string_view key, bool value);
  // A field of a type other than the one its label takes, or any field of Kind::any.
  void other(Label label, std::string_view key);
  // A problem found by the front end itself (a label of a type no SenML label has, …).
  void problem(std::string_view field, std::string reason);

 private:
  friend class Resolver;
  void seen(Label label) noexcept;

  const DecodeLimits* limits_;
  // Base fields present in this record (they carry forward, RFC 8428 §4.1).
  std::optional<std::string> base_name_;
  std::optional<std::string> base_unit_;
  std::optional<double> base_time_;
  std::optional<double> base_value_;
  std::optional<double> base_sum_;
  // Regular fields.
  std::optional<std::string> name_;
  std::optional<std::string> unit_;
  std::optional<double> value_;
  std::optional<bool> boolean_;
  std::optional<double> sum_;
  double time_ = 0;
  bool has_text_value_ = false;  // vs or vd: no numeric reading to map to
  bool regular_ = false;         // any field other than the base fields
  std::optional<std::string> problem_field_;
  std::string problem_reason_;
};

// Resolves the records of one pack, in order, into canonical sensor records: base fields carry
// forward, names are bn+n, values bv+v (or bs+s, or vb as 1/0), times bt+t with times below 2^28 s
// relative to now; consecutive readings of the same resolved time share one sensor record.
// The device id is the authenticated one from the context, never bn.
//
// Lifecycle: one per decode() call, on the worker thread that owns `out`.
class Resolver {
 public:
  Resolver(const DecodeLimits& limits, const DecodeContext& context, DecodedBatch& out);

  // Checks the record count before the record at `index` is read: false once past max_records.
  bool admit(std::size_t index) const noexcept { return index < limits_.max_records; }
  CodecError too_many_records() const;
  // The record at `index` (its fields as read) joins the pack.
  void add(std::size_t index, const Record& record);
  // The element at `index` is not a record at all (not an object / map).
  void reject(std::size_t index, std::string field, std::string reason);

 private:
  const DecodeLimits& limits_;
  const DecodeContext& context_;
  DecodedBatch& out_;
  double now_s_;
  std::string base_name_;
  std::string base_unit_;
  double base_time_ = 0;
  double base_value_ = 0;
  double base_sum_ = 0;
  CanonicalRecord* group_ = nullptr;  // the sensor record consecutive same-time readings join
};

}  // namespace telegate::codecs::senml
