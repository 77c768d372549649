#include "format/hf_config.h"

#include <optional>

#include "base/log.h"
#include "format/json_util.h"

namespace so {
namespace {

using nlohmann::json;

// note: bounds the recursion over a hostile or broken config.json; real ones nest 2 deep.
constexpr int kMaxObjectNesting = 16;

std::optional<MetadataValue> scalar_to_metadata(const json& value) {
  switch (value.type()) {
    case json::value_t::boolean:
      return MetadataValue::boolean(value.get<bool>());
    case json::value_t::string:
      return MetadataValue::string(value.get<std::string>());
    case json::value_t::number_integer:
      return MetadataValue::integer(MetadataType::kI64, value.get<int64_t>());
    case json::value_t::number_unsigned: {
      const uint64_t number = value.get<uint64_t>();
      if (number > static_cast<uint64_t>(INT64_MAX)) return MetadataValue::unsigned64(number);
      return MetadataValue::integer(MetadataType::kI64, static_cast<int64_t>(number));
    }
    case json::value_t::number_float:
      return MetadataValue::floating(MetadataType::kF64, value.get<double>());
    default:
      return std::nullopt;
  }
}

// nullopt when the array holds something Metadata cannot represent.
std::optional<MetadataValue> array_to_metadata(const json& array, int nesting) {
  if (nesting > kMaxObjectNesting) return std::nullopt;
  bool any_float = false;
  for (const json& element : array) any_float |= element.is_number_float();
  MetadataArray elements;
  elements.reserve(array.size());
  for (const json& element : array) {
    std::optional<MetadataValue> converted;
    if (element.is_array()) {
      converted = array_to_metadata(element, nesting + 1);
    } else if (element.is_number() && any_float) {
      converted = MetadataValue::floating(MetadataType::kF64, element.get<double>());
    } else {
      converted = scalar_to_metadata(element);
    }
    if (!converted) return std::nullopt;
    // note: every element must have the first one's type, as in a GGUF array.
    if (!elements.empty() && converted->type() != elements.front().type()) return std::nullopt;
    elements.push_back(std::move(*converted));
  }
  const MetadataType element_type = elements.empty() ? MetadataType::kI64 : elements.front().type();
  return MetadataValue::array(element_type, std::move(elements));
}

Status flatten_object(const json& object, const std::string& prefix, int nesting, Metadata& metadata) {
  if (nesting > kMaxObjectNesting) {
    return format_error("config.json nests objects more than ", kMaxObjectNesting, " deep (at ",
                        quote_for_message(prefix),
                        "); no model configuration needs that, so the file is damaged: re-download it");
  }
  for (const auto& [name, value] : object.items()) {
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    if (value.is_null()) continue;
    if (value.is_object()) {
      SO_TRY(flatten_object(value, key, nesting + 1, metadata));
      continue;
    }
    std::optional<MetadataValue> converted =
        value.is_array() ? array_to_metadata(value, nesting + 1) : scalar_to_metadata(value);
    if (!converted) {
      SO_LOG(Debug, "config.json: skipping ", key, ": an array that mixes types or holds objects or nulls");
      continue;
    }
    if (metadata.contains(key)) {
      return format_error("config.json sets ", quote_for_message(key),
                          " twice, once as a dotted name and once as a nested object; remove one of them");
    }
    metadata.set(key, std::move(*converted));
  }
  return Status::Ok();
}

}  // namespace

Result<Metadata> parse_hf_config(std::string_view json_text) {
  SO_ASSIGN_OR_RETURN(json config, parse_json_strict(json_text, "config.json"));
  if (!config.is_object()) {
    return format_error("config.json should hold a JSON object, found ", json_kind_name(config),
                        "; re-download it from the model's repository");
  }
  Metadata metadata;
  SO_TRY(flatten_object(config, "", 0, metadata));
  return metadata;
}

}  // namespace so
