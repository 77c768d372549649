// Key/value metadata of a model file. GGUF metadata maps one to one; a Hugging Face
// config.json is flattened into it ("rope_scaling.factor") by the safetensors loader.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"

namespace so {

// GGUF's value types, numbered as GGUF numbers them.
enum class MetadataType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
std::string_view metadata_type_name(MetadataType type);

class MetadataValue;
using MetadataArray = std::vector<MetadataValue>;

class MetadataValue {
 public:
  MetadataValue() = default;
  static MetadataValue integer(MetadataType type, int64_t value);  // any integer type
  static MetadataValue unsigned64(uint64_t value);
  static MetadataValue floating(MetadataType type, double value);  // kF32 or kF64
  static MetadataValue boolean(bool value);
  static MetadataValue string(std::string value);
  // element_type: the declared GGUF element type (kept for empty arrays)
  static MetadataValue array(MetadataType element_type, MetadataArray values);

  MetadataType type() const { return type_; }
  MetadataType element_type() const { return element_type_; }  // arrays only

  bool is_integer() const;
  bool is_float() const { return type_ == MetadataType::kF32 || type_ == MetadataType::kF64; }
  bool is_string() const { return type_ == MetadataType::kString; }
  bool is_array() const { return type_ == MetadataType::kArray; }
  bool is_bool() const { return type_ == MetadataType::kBool; }

  // Unchecked accessors; call the is_* predicate first.
  int64_t as_int() const;          // integers (u64 above INT64_MAX is clamped) and bools
  uint64_t as_uint64() const;
  double as_double() const;        // floats and integers
  bool as_bool() const;
  const std::string& as_string() const;
  const MetadataArray& as_array() const;

  // Short printable form for messages and `inspect`: 42, 1.5, "text", [3 x string]
  std::string summary() const;

 private:
  MetadataType type_ = MetadataType::kU8;
  MetadataType element_type_ = MetadataType::kU8;
  std::variant<int64_t, uint64_t, double, bool, std::string, std::shared_ptr<const MetadataArray>> value_;
};

class Metadata {
 public:
  void set(std::string key, MetadataValue value) { values_[std::move(key)] = std::move(value); }
  const MetadataValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const std::map<std::string, MetadataValue, std::less<>>& entries() const { return values_; }

  // Typed getters. Errors name the key, the type expected and the type found.
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;  // accepts integers too
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Result<std::vector<double>> get_float_array(std::string_view key) const;

  // Same, with a default when the key is absent (a present key of the wrong type is
  // still an error).
  Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;
  Result<bool> get_bool_or(std::string_view key, bool fallback) const;
  Result<std::string> get_string_or(std::string_view key, std::string fallback) const;

 private:
  std::map<std::string, MetadataValue, std::less<>> values_;
};

}  // namespace so
