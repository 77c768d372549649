#include "format/json_util.h"

#include <set>
#include <string>
#include <vector>

namespace so {

Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what) {
  using nlohmann::json;
  std::vector<std::set<std::string>> open_objects;  // keys seen so far, one set per open object
  std::string duplicate_key;
  json::parser_callback_t track_keys = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate_key.empty()) {
          duplicate_key = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json value;
  try {
    value = json::parse(text.begin(), text.end(), track_keys);
  } catch (const json::exception& error) {
    return format_error(what, " is not valid JSON (", error.what(), "); the file is damaged: re-download it");
  }
  if (!duplicate_key.empty()) {
    return format_error(what, " has the key ", quote_for_message(duplicate_key),
                        " twice in one object, so it is ambiguous which one is meant; the file is damaged: "
                        "re-download or re-convert it");
  }
  return value;
}

std::string_view json_kind_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a bool";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a float";
    default:
      return "an unusual JSON value";
  }
}

}  // namespace so
