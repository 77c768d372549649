// A Hugging Face config.json as Metadata.
#pragma once

#include <string_view>

#include "base/status.h"
#include "format/metadata.h"

namespace so {

// Flattens the JSON object `json_text` into metadata: nested objects become dotted keys
// ("rope_scaling.factor"), integers kI64 (kU64 above INT64_MAX), floats kF64, bools and
// strings as they are, arrays arrays (ints mixed with floats become kF64; an empty array is
// kI64). Null values, and arrays that mix strings with numbers or hold objects or nulls,
// are skipped: no model setting needs them.
Result<Metadata> parse_hf_config(std::string_view json_text);

}  // namespace so
