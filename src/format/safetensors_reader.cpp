// Safetensors files and Hugging Face model directories.
//
// A safetensors file is: u64 header length (little-endian) | JSON header | data section.
// The header maps each tensor name to {"dtype", "shape" (outer to inner), "data_offsets":
// [begin, end) relative to the data section}, plus an optional "__metadata__" object.
// A directory holds config.json and either model.safetensors or the shards that
// model.safetensors.index.json lists in its "weight_map" (tensor name -> shard file).
#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <map>

#include "format/hf_config.h"
#include "format/json_util.h"
#include "format/layout_checks.h"
#include "format/model_file.h"

namespace so {
namespace {

static_assert(std::endian::native == std::endian::little, "the safetensors reader assumes a little-endian host");

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kSupportedDtypes = "F32, F16, BF16 and U8 (MXFP4 blocks and scales)";

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  // note: bytes; read only as gpt-oss's MXFP4 blocks and E8M0 scales, which the loader repacks.
  if (name == "U8") return DType::kI8;
  return std::nullopt;
}

// A JSON array of non-negative integers, or nullopt.
std::optional<std::vector<uint64_t>> unsigned_array(const json& value) {
  if (!value.is_array()) return std::nullopt;
  std::vector<uint64_t> numbers;
  for (const json& element : value) {
    if (!element.is_number_unsigned()) return std::nullopt;
    numbers.push_back(element.get<uint64_t>());
  }
  return numbers;
}

Status bad_entry(const std::string& name, std::string_view problem, const json& found) {
  return format_error("the safetensors header entry for tensor ", quote_for_message(name), " ", problem, ", found ",
                      quote_for_message(found.dump(), 80), "; the file is corrupt: ", kRedownloadAdvice);
}

// One header entry -> TensorInfo with `offset` relative to the data section and no data yet.
Result<TensorInfo> parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_size) {
  if (!entry.is_object()) return bad_entry(name, "should be an object with dtype, shape and data_offsets", entry);
  TensorInfo info;
  info.name = name;

  auto dtype_field = entry.find("dtype");
  if (dtype_field == entry.end() || !dtype_field->is_string()) {
    return bad_entry(name, "should have a string \"dtype\"", entry);
  }
  const std::string& dtype_text = dtype_field->get_ref<const std::string&>();
  std::optional<DType> dtype = dtype_from_safetensors_name(dtype_text);
  if (!dtype) {
    return unsupported("tensor ", quote_for_message(name), " has safetensors dtype ", quote_for_message(dtype_text),
                       ", but only ", kSupportedDtypes,
                       " are supported; convert the model to one of those (or to a GGUF file) first");
  }
  info.dtype = *dtype;

  auto shape_field = entry.find("shape");
  std::optional<std::vector<uint64_t>> dims;
  if (shape_field != entry.end()) dims = unsigned_array(*shape_field);
  if (!dims) return bad_entry(name, "should have a \"shape\" that is an array of non-negative integers", entry);
  SO_ASSIGN_OR_RETURN(info.shape, make_tensor_shape(name, *dims));
  SO_ASSIGN_OR_RETURN(info.bytes, tensor_data_bytes(name, info.dtype, info.shape));

  auto offsets_field = entry.find("data_offsets");
  std::optional<std::vector<uint64_t>> offsets;
  if (offsets_field != entry.end()) offsets = unsigned_array(*offsets_field);
  if (!offsets || offsets->size() != 2 || (*offsets)[0] > (*offsets)[1]) {
    return bad_entry(name, "should have \"data_offsets\" [begin, end] with begin <= end", entry);
  }
  const uint64_t begin = (*offsets)[0], end = (*offsets)[1];
  if (end > data_size) {
    return format_error("tensor ", quote_for_message(name), " takes bytes ", begin, " to ", end,
                        " of the data section, but the section has only ", data_size,
                        " bytes; the file is truncated: ", kRedownloadAdvice);
  }
  if (end - begin != info.bytes) {
    return format_error("tensor ", quote_for_message(name), " (", dtype_text, ", shape ", info.shape.to_string(),
                        ") needs ", info.bytes, " bytes, but its data_offsets [", begin, ", ", end, "] span ",
                        end - begin, "; the file is corrupt: ", kRedownloadAdvice);
  }
  info.offset = begin;
  return info;
}

// A shard name from the index must stay inside the model directory.
bool is_plain_relative_path(const std::string& name) {
  if (name.empty()) return false;
  fs::path path(name);
  if (path.is_absolute()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

Status read_shard_index(const fs::path& index_path, std::map<std::string, std::string>& shard_of_tensor) {
  SO_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path.string()));
  SO_ASSIGN_OR_RETURN(json index, parse_json_strict(text, "model.safetensors.index.json"));
  auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || weight_map == index.end() || !weight_map->is_object()) {
    return format_error(
        "model.safetensors.index.json should be an object with a \"weight_map\" object "
        "(tensor name -> shard file), found ",
        quote_for_message(index.dump(), 80), "; re-download it from the model's repository");
  }
  for (const auto& [tensor_name, shard] : weight_map->items()) {
    if (!shard.is_string() || !is_plain_relative_path(shard.get<std::string>())) {
      return format_error("model.safetensors.index.json maps tensor ", quote_for_message(tensor_name), " to ",
                          quote_for_message(shard.dump(), 80),
                          ", expected the file name of a shard in the model directory; re-download the index");
    }
    shard_of_tensor.emplace(tensor_name, shard.get<std::string>());
  }
  return Status::Ok();
}

// Every tensor must be where the index says, and every indexed tensor must exist.
Status check_index_matches_shards(const std::map<std::string, std::string>& shard_of_tensor,
                                  const std::vector<std::string>& shard_names, const TensorDirectory& tensors) {
  for (const TensorInfo& info : tensors.tensors()) {
    const std::string& actual_shard = shard_names[static_cast<size_t>(info.file_index)];
    auto listed = shard_of_tensor.find(info.name);
    if (listed == shard_of_tensor.end()) {
      return format_error("tensor ", quote_for_message(info.name), " is in shard ", quote_for_message(actual_shard),
                          " but model.safetensors.index.json does not list it; the index and the shards come from "
                          "different downloads: re-download the model");
    }
    if (listed->second != actual_shard) {
      return format_error("tensor ", quote_for_message(info.name), " is in shard ", quote_for_message(actual_shard),
                          " but model.safetensors.index.json says it is in ", quote_for_message(listed->second),
                          "; the index and the shards come from different downloads: re-download the model");
    }
  }
  for (const auto& [tensor_name, shard] : shard_of_tensor) {
    if (tensors.find(tensor_name) == nullptr) {
      return format_error("model.safetensors.index.json lists tensor ", quote_for_message(tensor_name), " in shard ",
                          quote_for_message(shard),
                          ", but that shard does not contain it; the shard is incomplete or from another version: "
                          "re-download the model");
    }
  }
  return Status::Ok();
}

std::string safetensors_files_in(const fs::path& directory) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    if (entry.path().extension() == ".safetensors") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) return "it has no .safetensors files";
  std::string list = "it has ";
  for (size_t i = 0; i < names.size() && i < 8; ++i) list += str_cat(i ? ", " : "", quote_for_message(names[i]));
  return names.size() > 8 ? list + ", ..." : list;
}

}  // namespace

Status parse_safetensors(std::span<const uint8_t> bytes, int file_index, TensorDirectory& directory) {
  if (bytes.size() < 8) {
    return format_error("the file is ", bytes.size(),
                        " bytes, too small for a safetensors file (which starts with an 8-byte header length); "
                        "the file is truncated: ",
                        kRedownloadAdvice);
  }
  uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);
  if (header_length > bytes.size() - 8) {
    return format_error("the safetensors header length (first 8 bytes) is ", header_length, ", more than the ",
                        bytes.size() - 8,
                        " bytes that follow it; the file is truncated or not a safetensors file: ", kRedownloadAdvice);
  }
  std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8), header_length);
  if (!header_text.starts_with('{')) {
    return format_error("the safetensors header should be a JSON object starting with '{', found ",
                        quote_for_message(header_text, 16), "; the file is corrupt: ", kRedownloadAdvice);
  }
  SO_ASSIGN_OR_RETURN(json header, parse_json_strict(header_text, "the safetensors header"));
  SO_CHECK(header.is_object(), "valid JSON text starting with '{' is an object");

  const uint64_t data_start = 8 + header_length;
  const uint64_t data_size = bytes.size() - data_start;
  std::vector<TensorInfo> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return format_error("the safetensors header's __metadata__ should be an object, found ", json_kind_name(entry),
                            "; the file is corrupt: ", kRedownloadAdvice);
      }
      continue;
    }
    SO_ASSIGN_OR_RETURN(TensorInfo info, parse_tensor_entry(name, entry, data_size));
    info.file_index = file_index;
    tensors.push_back(std::move(info));
  }

  std::vector<TensorByteRange> ranges;
  ranges.reserve(tensors.size());
  for (const TensorInfo& info : tensors) ranges.push_back({info.offset, info.offset + info.bytes, info.name});
  SO_TRY(check_ranges_disjoint(ranges));

  // note: tensors go into the directory in file order, which is the order to stream them in.
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
  for (TensorInfo& info : tensors) {
    if (const TensorInfo* other = directory.find(info.name)) {
      return format_error("tensor ", quote_for_message(info.name), " appears in two safetensors files (numbers ",
                          other->file_index, " and ", file_index,
                          "), so it is ambiguous which one is meant; "
                          "re-download the model");
    }
    info.offset += data_start;  // now relative to the start of the file
    info.data = bytes.data() + info.offset;
    SO_TRY(directory.add(std::move(info)));
  }
  return Status::Ok();
}

Result<ModelFile> open_safetensors_directory(const std::string& directory, MapMode mode) {
  const fs::path root(directory);
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    return not_found("'", directory,
                     "' is not a directory; expected a Hugging Face model directory holding "
                     "config.json and .safetensors files");
  }
  ModelFile model;
  model.format = ModelFormat::kSafetensors;
  model.path = directory;

  const fs::path config_path = root / "config.json";
  if (!fs::exists(config_path, error)) {
    return not_found("'", directory,
                     "' has no config.json; a Hugging Face model directory needs it next to the "
                     ".safetensors files: download it from the model's repository");
  }
  SO_ASSIGN_OR_RETURN(std::string config_text, read_text_file(config_path.string()));
  Result<Metadata> metadata = parse_hf_config(config_text);
  if (!metadata.ok()) return metadata.status().with_context(str_cat("reading '", config_path.string(), "'"));
  model.metadata = std::move(metadata).value();

  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single_path = root / "model.safetensors";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> shard_of_tensor;
  const bool sharded = fs::exists(index_path, error);
  if (sharded) {
    Status read = read_shard_index(index_path, shard_of_tensor);
    if (!read.ok()) return read.with_context(str_cat("reading '", index_path.string(), "'"));
    for (const auto& [tensor_name, shard] : shard_of_tensor) shard_names.push_back(shard);
    std::sort(shard_names.begin(), shard_names.end());
    shard_names.erase(std::unique(shard_names.begin(), shard_names.end()), shard_names.end());
  } else if (fs::exists(single_path, error)) {
    shard_names.push_back("model.safetensors");
  } else {
    return not_found("'", directory, "' has neither model.safetensors nor model.safetensors.index.json (",
                     safetensors_files_in(root), "); download the model's weights into it");
  }

  for (size_t i = 0; i < shard_names.size(); ++i) {
    const std::string shard_path = (root / shard_names[i]).string();
    if (!fs::exists(shard_path, error)) {
      return not_found("shard ", quote_for_message(shard_names[i]),
                       " listed in model.safetensors.index.json is missing from '", directory,
                       "'; download every shard of the model");
    }
    SO_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(shard_path, mode));
    Status parsed = parse_safetensors(file.bytes(), static_cast<int>(i), model.tensors);
    if (!parsed.ok()) return parsed.with_context(str_cat("reading '", shard_path, "'"));
    model.files.push_back(std::move(file));  // note: moving a mapping keeps its address
  }
  if (sharded) SO_TRY(check_index_matches_shards(shard_of_tensor, shard_names, model.tensors));
  return model;
}

}  // namespace so
