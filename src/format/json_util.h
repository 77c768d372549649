// JSON parsing for the Hugging Face side of the readers (config.json, the shard index and
// safetensors headers).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "base/status.h"

namespace so {

// Parses `text`, refusing a key that appears twice in one object (nlohmann would silently
// keep the last one, and in a safetensors header that hides a tensor). `what` names the
// text in messages: "config.json", "the safetensors header".
Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what);

// JSON kind for messages: "an object", "a string", "null", ...
std::string_view json_kind_name(const nlohmann::json& value);

}  // namespace so
