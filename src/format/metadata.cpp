#include "format/metadata.h"

#include <cstdio>
#include <limits>

namespace so {

std::string_view metadata_type_name(MetadataType type) {
  switch (type) {
    case MetadataType::kU8: return "uint8";
    case MetadataType::kI8: return "int8";
    case MetadataType::kU16: return "uint16";
    case MetadataType::kI16: return "int16";
    case MetadataType::kU32: return "uint32";
    case MetadataType::kI32: return "int32";
    case MetadataType::kF32: return "float32";
    case MetadataType::kBool: return "bool";
    case MetadataType::kString: return "string";
    case MetadataType::kArray: return "array";
    case MetadataType::kU64: return "uint64";
    case MetadataType::kI64: return "int64";
    case MetadataType::kF64: return "float64";
  }
  return "unknown";
}

MetadataValue MetadataValue::integer(MetadataType type, int64_t value) {
  MetadataValue v;
  v.type_ = type;
  v.value_ = value;
  return v;
}

MetadataValue MetadataValue::unsigned64(uint64_t value) {
  MetadataValue v;
  v.type_ = MetadataType::kU64;
  v.value_ = value;
  return v;
}

MetadataValue MetadataValue::floating(MetadataType type, double value) {
  MetadataValue v;
  v.type_ = type;
  v.value_ = value;
  return v;
}

MetadataValue MetadataValue::boolean(bool value) {
  MetadataValue v;
  v.type_ = MetadataType::kBool;
  v.value_ = value;
  return v;
}

MetadataValue MetadataValue::string(std::string value) {
  MetadataValue v;
  v.type_ = MetadataType::kString;
  v.value_ = std::move(value);
  return v;
}

MetadataValue MetadataValue::array(MetadataType element_type, MetadataArray values) {
  MetadataValue v;
  v.type_ = MetadataType::kArray;
  v.element_type_ = element_type;
  v.value_ = std::make_shared<const MetadataArray>(std::move(values));
  return v;
}

bool MetadataValue::is_integer() const {
  switch (type_) {
    case MetadataType::kU8:
    case MetadataType::kI8:
    case MetadataType::kU16:
    case MetadataType::kI16:
    case MetadataType::kU32:
    case MetadataType::kI32:
    case MetadataType::kU64:
    case MetadataType::kI64: return true;
    default: return false;
  }
}

int64_t MetadataValue::as_int() const {
  if (const auto* u = std::get_if<uint64_t>(&value_)) {
    return *u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                           : static_cast<int64_t>(*u);
  }
  if (const auto* b = std::get_if<bool>(&value_)) return *b ? 1 : 0;
  if (const auto* d = std::get_if<double>(&value_)) return static_cast<int64_t>(*d);
  return std::get<int64_t>(value_);
}

uint64_t MetadataValue::as_uint64() const {
  if (const auto* u = std::get_if<uint64_t>(&value_)) return *u;
  return static_cast<uint64_t>(as_int());
}

double MetadataValue::as_double() const {
  if (const auto* d = std::get_if<double>(&value_)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&value_)) return static_cast<double>(*u);
  return static_cast<double>(as_int());
}

bool MetadataValue::as_bool() const {
  if (const auto* b = std::get_if<bool>(&value_)) return *b;
  return as_int() != 0;
}

const std::string& MetadataValue::as_string() const { return std::get<std::string>(value_); }

const MetadataArray& MetadataValue::as_array() const {
  return *std::get<std::shared_ptr<const MetadataArray>>(value_);
}

std::string MetadataValue::summary() const {
  switch (type_) {
    case MetadataType::kString: return quote_for_message(as_string(), 60);
    case MetadataType::kBool: return as_bool() ? "true" : "false";
    case MetadataType::kF32:
    case MetadataType::kF64: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%g", as_double());
      return buffer;
    }
    case MetadataType::kU64: return std::to_string(as_uint64());
    case MetadataType::kArray:
      return str_cat("[", as_array().size(), " x ", metadata_type_name(element_type_), "]");
    default: return std::to_string(as_int());
  }
}

const MetadataValue* Metadata::find(std::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

namespace {

Status missing_key(std::string_view key) {
  return not_found("metadata key '", key, "' is missing");
}

Status wrong_type(std::string_view key, std::string_view expected, const MetadataValue& value) {
  return format_error("metadata key '", key, "' should be ", expected, " but is ",
                      metadata_type_name(value.type()), " ", value.summary());
}

template <typename T, typename Convert>
Result<std::vector<T>> get_array(const Metadata& metadata, std::string_view key, std::string_view expected,
                                 bool (MetadataValue::*accepts)() const, Convert convert) {
  const MetadataValue* value = metadata.find(key);
  if (!value) return missing_key(key);
  if (!value->is_array()) return wrong_type(key, expected, *value);
  std::vector<T> out;
  out.reserve(value->as_array().size());
  for (size_t i = 0; i < value->as_array().size(); ++i) {
    const MetadataValue& element = value->as_array()[i];
    if (!(element.*accepts)()) {
      return format_error("metadata key '", key, "' should be ", expected, " but element ", i, " is ",
                          metadata_type_name(element.type()));
    }
    out.push_back(convert(element));
  }
  return out;
}

}  // namespace

Result<int64_t> Metadata::get_int(std::string_view key) const {
  const MetadataValue* value = find(key);
  if (!value) return missing_key(key);
  if (!value->is_integer()) return wrong_type(key, "an integer", *value);
  return value->as_int();
}

Result<double> Metadata::get_float(std::string_view key) const {
  const MetadataValue* value = find(key);
  if (!value) return missing_key(key);
  if (!value->is_float() && !value->is_integer()) return wrong_type(key, "a number", *value);
  return value->as_double();
}

Result<bool> Metadata::get_bool(std::string_view key) const {
  const MetadataValue* value = find(key);
  if (!value) return missing_key(key);
  if (!value->is_bool()) return wrong_type(key, "a bool", *value);
  return value->as_bool();
}

Result<std::string> Metadata::get_string(std::string_view key) const {
  const MetadataValue* value = find(key);
  if (!value) return missing_key(key);
  if (!value->is_string()) return wrong_type(key, "a string", *value);
  return value->as_string();
}

Result<std::vector<std::string>> Metadata::get_string_array(std::string_view key) const {
  return get_array<std::string>(*this, key, "an array of strings", &MetadataValue::is_string,
                                [](const MetadataValue& v) { return v.as_string(); });
}

Result<std::vector<int64_t>> Metadata::get_int_array(std::string_view key) const {
  return get_array<int64_t>(*this, key, "an array of integers", &MetadataValue::is_integer,
                            [](const MetadataValue& v) { return v.as_int(); });
}

Result<std::vector<double>> Metadata::get_float_array(std::string_view key) const {
  auto is_number = &MetadataValue::is_float;
  const MetadataValue* value = find(key);
  if (value && value->is_array() && !value->as_array().empty() && value->as_array()[0].is_integer()) {
    is_number = &MetadataValue::is_integer;
  }
  return get_array<double>(*this, key, "an array of numbers", is_number,
                           [](const MetadataValue& v) { return v.as_double(); });
}

Result<int64_t> Metadata::get_int_or(std::string_view key, int64_t fallback) const {
  return contains(key) ? get_int(key) : Result<int64_t>(fallback);
}
Result<double> Metadata::get_float_or(std::string_view key, double fallback) const {
  return contains(key) ? get_float(key) : Result<double>(fallback);
}
Result<bool> Metadata::get_bool_or(std::string_view key, bool fallback) const {
  return contains(key) ? get_bool(key) : Result<bool>(fallback);
}
Result<std::string> Metadata::get_string_or(std::string_view key, std::string fallback) const {
  return contains(key) ? get_string(key) : Result<std::string>(std::move(fallback));
}

}  // namespace so
