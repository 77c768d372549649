// GGUF v2/v3 reader. Layout (all little-endian):
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x (string key | u32 value_type | value)
//   n_tensors x (string name | u32 n_dims | u64 ne[n_dims], innermost first | u32 ggml_type | u64 offset)
//   padding to general.alignment (default 32) | data section (tensor offsets are relative to it)
// where string = u64 length | bytes, and an array value = u32 element_type | u64 count | elements.
//
// Everything read from the file is bounds-checked against the bytes actually present before
// it is used; a malformed file gives a Status naming the field, the offset and what to do.
#include <bit>
#include <cstring>
#include <unordered_map>

#include "format/layout_checks.h"
#include "format/model_file.h"

namespace so {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr uint64_t kDefaultAlignment = 32;
// note: bounds the recursion of nested arrays, so a small file cannot exhaust the stack.
constexpr int kMaxArrayNesting = 8;
// Fewest bytes one metadata entry can take: key length, empty key, value type, 1-byte value.
constexpr uint64_t kMinMetadataEntryBytes = 8 + 4 + 1;
// Fewest bytes one tensor info can take: name length, empty name, n_dims (0), type, offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
constexpr uint32_t kLastMetadataType = static_cast<uint32_t>(MetadataType::kF64);

// Sequential reader over the header bytes. `what` arguments name the field for messages and
// are static strings, so the happy path builds no message text.
class HeaderCursor {
 public:
  explicit HeaderCursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return bytes_.size() - offset_; }

  template <typename T>
  Result<T> read(std::string_view what) {
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  Result<std::string> read_string(std::string_view what) {
    const uint64_t length_offset = offset_;
    SO_ASSIGN_OR_RETURN(uint64_t length, read<uint64_t>(what));
    if (length > remaining()) {
      return format_error(what, " at offset ", length_offset, " claims ", length, " bytes, but only ", remaining(),
                          " bytes are left in the file (size ", bytes_.size(),
                          "); the file is truncated or corrupt: ", kRedownloadAdvice);
    }
    std::string text(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
    offset_ += length;
    return text;
  }

  Status truncated(std::string_view what, uint64_t needed) const {
    return format_error("the file ends inside the GGUF header: ", what, " at offset ", offset_, " needs ", needed,
                        " bytes, but only ", remaining(), " are left (file size ", bytes_.size(),
                        "); the file is truncated: ", kRedownloadAdvice);
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t offset_ = 0;
};

Status check_magic(std::span<const uint8_t> bytes) {
  std::string_view start(reinterpret_cast<const char*>(bytes.data()), std::min<size_t>(bytes.size(), 8));
  if (start.starts_with("GGUF")) return Status::Ok();
  if (bytes.empty()) return format_error("the file is empty, expected a GGUF model; ", kRedownloadAdvice);
  std::string hex;
  for (unsigned char c : start)
    hex += str_cat(hex.empty() ? "" : " ", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
  std::string found = str_cat(quote_for_message(start), " (", hex, ")");
  // note: the ggml formats before GGUF wrote these magics as little-endian u32s.
  if (start.starts_with("lmgg") || start.starts_with("fmgg") || start.starts_with("tjgg")) {
    return unsupported("this is a pre-GGUF llama.cpp file (GGML/GGMF/GGJT magic, first bytes ", found,
                       "); re-convert the model to GGUF with a current llama.cpp");
  }
  return format_error("not a GGUF file: expected the magic \"GGUF\" at offset 0, found ", found,
                      "; pass a GGUF model file (or a Hugging Face model directory), or ", kRedownloadAdvice);
}

Status check_version(uint32_t version) {
  if (version == 2 || version == 3) return Status::Ok();
  if (version == 1) {
    return unsupported(
        "GGUF version 1 is not supported (this reader handles versions 2 and 3); "
        "re-convert the model with a current llama.cpp");
  }
  const uint32_t swapped = __builtin_bswap32(version);
  if (swapped >= 1 && swapped <= 3) {
    return unsupported("this GGUF file is big-endian (its version reads as ", version, ", which is ", swapped,
                       " byte-swapped); only little-endian GGUF files are supported: convert it with "
                       "gguf-convert-endian from the gguf Python package, or use a little-endian download");
  }
  return unsupported("unsupported GGUF version ", version,
                     " (this reader handles versions 2 and 3); the file is corrupt or newer than this engine: ",
                     kRedownloadAdvice, " with a llama.cpp that writes version 3");
}

Result<MetadataType> read_metadata_type(HeaderCursor& cursor, std::string_view what) {
  const uint64_t type_offset = cursor.offset();
  SO_ASSIGN_OR_RETURN(uint32_t type_number, cursor.read<uint32_t>(what));
  if (type_number > kLastMetadataType) {
    return format_error(what, " at offset ", type_offset, " is ", type_number,
                        ", which is not a GGUF value type (expected 0 to ", kLastMetadataType,
                        "); the file is corrupt: ", kRedownloadAdvice);
  }
  return static_cast<MetadataType>(type_number);
}

// Fewest bytes one value of `type` can take; bounds array counts before allocating.
uint64_t min_value_bytes(MetadataType type) {
  switch (type) {
    case MetadataType::kU8:
    case MetadataType::kI8:
    case MetadataType::kBool:
      return 1;
    case MetadataType::kU16:
    case MetadataType::kI16:
      return 2;
    case MetadataType::kU32:
    case MetadataType::kI32:
    case MetadataType::kF32:
      return 4;
    case MetadataType::kU64:
    case MetadataType::kI64:
    case MetadataType::kF64:
    case MetadataType::kString:
      return 8;  // the string's length
    case MetadataType::kArray:
      return 4 + 8;  // element type and count
  }
  return 1;
}

template <typename T>
Result<MetadataValue> read_integer(HeaderCursor& cursor, MetadataType type) {
  SO_ASSIGN_OR_RETURN(T value, cursor.read<T>("an integer value"));
  return MetadataValue::integer(type, static_cast<int64_t>(value));
}

Result<MetadataValue> read_metadata_value(HeaderCursor& cursor, MetadataType type, int nesting);

Result<MetadataValue> read_metadata_array(HeaderCursor& cursor, int nesting) {
  if (nesting >= kMaxArrayNesting) {
    return format_error("arrays are nested more than ", kMaxArrayNesting, " deep at offset ", cursor.offset(),
                        "; no model needs that, so the file is corrupt: ", kRedownloadAdvice);
  }
  SO_ASSIGN_OR_RETURN(MetadataType element_type, read_metadata_type(cursor, "the array element type"));
  const uint64_t count_offset = cursor.offset();
  SO_ASSIGN_OR_RETURN(uint64_t count, cursor.read<uint64_t>("the array element count"));
  const uint64_t element_bytes = min_value_bytes(element_type);
  if (count > cursor.remaining() / element_bytes) {
    return format_error("the array at offset ", count_offset, " claims ", count, " elements of type ",
                        metadata_type_name(element_type), " (at least ", element_bytes, " bytes each), but only ",
                        cursor.remaining(),
                        " bytes are left in the file; the file is truncated or corrupt: ", kRedownloadAdvice);
  }
  MetadataArray elements;
  elements.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Result<MetadataValue> element = read_metadata_value(cursor, element_type, nesting + 1);
    if (!element.ok()) return element.status().with_context(str_cat("array element ", i));
    elements.push_back(std::move(element).value());
  }
  return MetadataValue::array(element_type, std::move(elements));
}

Result<MetadataValue> read_metadata_value(HeaderCursor& cursor, MetadataType type, int nesting) {
  switch (type) {
    case MetadataType::kU8:
      return read_integer<uint8_t>(cursor, type);
    case MetadataType::kI8:
      return read_integer<int8_t>(cursor, type);
    case MetadataType::kU16:
      return read_integer<uint16_t>(cursor, type);
    case MetadataType::kI16:
      return read_integer<int16_t>(cursor, type);
    case MetadataType::kU32:
      return read_integer<uint32_t>(cursor, type);
    case MetadataType::kI32:
      return read_integer<int32_t>(cursor, type);
    case MetadataType::kI64:
      return read_integer<int64_t>(cursor, type);
    case MetadataType::kU64: {
      SO_ASSIGN_OR_RETURN(uint64_t value, cursor.read<uint64_t>("a uint64 value"));
      return MetadataValue::unsigned64(value);
    }
    case MetadataType::kF32: {
      SO_ASSIGN_OR_RETURN(float value, cursor.read<float>("a float32 value"));
      return MetadataValue::floating(type, value);
    }
    case MetadataType::kF64: {
      SO_ASSIGN_OR_RETURN(double value, cursor.read<double>("a float64 value"));
      return MetadataValue::floating(type, value);
    }
    case MetadataType::kBool: {
      SO_ASSIGN_OR_RETURN(uint8_t value, cursor.read<uint8_t>("a bool value"));
      return MetadataValue::boolean(value != 0);
    }
    case MetadataType::kString: {
      SO_ASSIGN_OR_RETURN(std::string value, cursor.read_string("a string value's length"));
      return MetadataValue::string(std::move(value));
    }
    case MetadataType::kArray:
      return read_metadata_array(cursor, nesting);
  }
  SO_CHECK(false, "metadata type ", static_cast<uint32_t>(type), " passed read_metadata_type");
  __builtin_unreachable();
}

Status read_metadata(HeaderCursor& cursor, uint64_t n_entries, Metadata& metadata) {
  for (uint64_t i = 0; i < n_entries; ++i) {
    Result<std::string> key = cursor.read_string("the key length");
    if (!key.ok()) return key.status().with_context(str_cat("metadata entry ", i));
    if (metadata.contains(*key)) {
      return format_error("metadata key ", quote_for_message(*key), " appears twice (the second time as entry ", i,
                          "), so it is ambiguous which value is meant; the file is corrupt: ", kRedownloadAdvice);
    }
    const std::string context = str_cat("metadata entry ", i, " (", quote_for_message(*key), ")");
    Result<MetadataType> type = read_metadata_type(cursor, "the value type");
    if (!type.ok()) return type.status().with_context(context);
    Result<MetadataValue> value = read_metadata_value(cursor, *type, 0);
    if (!value.ok()) return value.status().with_context(context);
    metadata.set(std::move(key).value(), std::move(value).value());
  }
  return Status::Ok();
}

Result<uint64_t> alignment_of(const Metadata& metadata) {
  const MetadataValue* value = metadata.find("general.alignment");
  if (value == nullptr) return kDefaultAlignment;
  if (value->type() != MetadataType::kU32) {
    return format_error("general.alignment should be a uint32, found ", metadata_type_name(value->type()), " ",
                        value->summary(), "; the file is corrupt: ", kRedownloadAdvice);
  }
  const uint64_t alignment = value->as_uint64();
  if (!std::has_single_bit(alignment)) {
    return format_error("general.alignment is ", alignment,
                        ", expected a power of two (32 when absent); the file is corrupt: ", kRedownloadAdvice);
  }
  return alignment;
}

// One tensor info; `offset` is relative to the data section, `data` is filled in later.
Result<TensorInfo> read_tensor_info(HeaderCursor& cursor, uint64_t alignment) {
  TensorInfo info;
  SO_ASSIGN_OR_RETURN(info.name, cursor.read_string("the name length"));
  const std::string quoted_name = quote_for_message(info.name);
  SO_ASSIGN_OR_RETURN(uint32_t n_dims, cursor.read<uint32_t>("n_dims"));
  SO_TRY(check_tensor_dim_count(info.name, n_dims));
  uint64_t dims_outer_to_inner[kMaxDims] = {};
  for (uint32_t i = 0; i < n_dims; ++i) {
    // note: GGUF stores ne[] innermost first; Shape lists dims outer to inner.
    SO_ASSIGN_OR_RETURN(dims_outer_to_inner[n_dims - 1 - i], cursor.read<uint64_t>("a dimension"));
  }
  const uint64_t type_offset = cursor.offset();
  SO_ASSIGN_OR_RETURN(uint32_t ggml_type, cursor.read<uint32_t>("the ggml type"));
  SO_ASSIGN_OR_RETURN(info.offset, cursor.read<uint64_t>("the data offset"));

  std::optional<DTypeInfo> dtype = dtype_info_from_ggml(ggml_type);
  if (!dtype) {
    return format_error("tensor ", quoted_name, " has ggml type number ", ggml_type, " (at offset ", type_offset,
                        "), which this engine does not know; the file is corrupt or was written by a newer llama.cpp: "
                        "re-download it, or re-convert the model to one of ",
                        supported_weight_dtypes());
  }
  info.dtype = dtype->dtype;
  SO_ASSIGN_OR_RETURN(info.shape, make_tensor_shape(info.name, std::span(dims_outer_to_inner, n_dims)));
  SO_ASSIGN_OR_RETURN(info.bytes, tensor_data_bytes(info.name, info.dtype, info.shape));
  if (info.offset % alignment != 0) {
    return format_error("tensor ", quoted_name, " starts at data offset ", info.offset,
                        ", which is not a multiple of the file's alignment ", alignment,
                        "; the file is corrupt: ", kRedownloadAdvice);
  }
  return info;
}

// Places every tensor in the data section: bounds, overlaps, and the data pointers.
Status place_tensors(std::span<const uint8_t> bytes, uint64_t data_start, std::vector<TensorInfo>& tensors) {
  if (tensors.empty()) return Status::Ok();
  if (data_start > bytes.size()) {
    return format_error("the tensor data should start at offset ", data_start, ", past the end of the file (size ",
                        bytes.size(), "); the file is truncated: ", kRedownloadAdvice);
  }
  const uint64_t data_size = bytes.size() - data_start;
  std::vector<TensorByteRange> ranges;
  ranges.reserve(tensors.size());
  for (TensorInfo& info : tensors) {
    std::optional<uint64_t> end = checked_add(info.offset, info.bytes);
    if (!end || *end > data_size) {
      return format_error("tensor ", quote_for_message(info.name), " (", dtype_name(info.dtype), ", shape ",
                          info.shape.to_string(), ") takes bytes ", info.offset, " to ",
                          end ? str_cat(*end) : std::string("beyond 2^64"),
                          " of the data section, but the section has only ", data_size,
                          " bytes; the file is truncated: ", kRedownloadAdvice);
    }
    ranges.push_back({info.offset, *end, info.name});
  }
  SO_TRY(check_ranges_disjoint(ranges));
  for (TensorInfo& info : tensors) {
    info.offset += data_start;  // now relative to the start of the file
    info.data = bytes.data() + info.offset;
  }
  return Status::Ok();
}

}  // namespace

Result<ModelFile> parse_gguf(std::span<const uint8_t> bytes) {
  SO_TRY(check_magic(bytes));
  HeaderCursor cursor(bytes);
  SO_TRY(cursor.read<uint32_t>("the magic"));
  ModelFile model;
  model.format = ModelFormat::kGguf;
  SO_ASSIGN_OR_RETURN(model.gguf_version, cursor.read<uint32_t>("the version"));
  SO_TRY(check_version(model.gguf_version));
  SO_ASSIGN_OR_RETURN(uint64_t n_tensors, cursor.read<uint64_t>("the tensor count"));
  SO_ASSIGN_OR_RETURN(uint64_t n_metadata, cursor.read<uint64_t>("the metadata entry count"));
  // note: both counts are bounded by the bytes left before anything is allocated for them.
  if (n_metadata > cursor.remaining() / kMinMetadataEntryBytes) {
    return format_error("the GGUF header claims ", n_metadata, " metadata entries, but the ", cursor.remaining(),
                        " bytes left in the file can hold at most ", cursor.remaining() / kMinMetadataEntryBytes,
                        "; the header is corrupt: ", kRedownloadAdvice);
  }
  const uint64_t bytes_for_tensor_infos = cursor.remaining() - n_metadata * kMinMetadataEntryBytes;
  if (n_tensors > bytes_for_tensor_infos / kMinTensorInfoBytes) {
    return format_error("the GGUF header claims ", n_tensors, " tensors, but the ", bytes_for_tensor_infos,
                        " bytes left after the metadata can describe at most ",
                        bytes_for_tensor_infos / kMinTensorInfoBytes, "; the header is corrupt: ", kRedownloadAdvice);
  }

  SO_TRY(read_metadata(cursor, n_metadata, model.metadata));
  SO_ASSIGN_OR_RETURN(model.gguf_alignment, alignment_of(model.metadata));

  std::vector<TensorInfo> tensors;
  tensors.reserve(n_tensors);
  std::unordered_map<std::string, uint64_t> tensor_index_by_name;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Result<TensorInfo> info = read_tensor_info(cursor, model.gguf_alignment);
    if (!info.ok()) return info.status().with_context(str_cat("tensor info ", i));
    auto [previous, inserted] = tensor_index_by_name.emplace(info->name, i);
    if (!inserted) {
      return format_error("tensor ", quote_for_message(info->name), " is described twice (tensor infos ",
                          previous->second, " and ", i,
                          "), so it is ambiguous which data is meant; the file is corrupt: ", kRedownloadAdvice);
    }
    tensors.push_back(std::move(info).value());
  }

  std::optional<uint64_t> data_start = checked_align_up(cursor.offset(), model.gguf_alignment);
  SO_CHECK(data_start.has_value(), "a header offset within the file cannot overflow when aligned to 2^31");
  SO_TRY(place_tensors(bytes, *data_start, tensors));
  for (TensorInfo& info : tensors) SO_TRY(model.tensors.add(std::move(info)));
  return model;
}

Result<ModelFile> open_gguf(const std::string& path, MapMode mode) {
  SO_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path, mode));
  Result<ModelFile> model = parse_gguf(file.bytes());
  if (!model.ok()) return model.status().with_context(str_cat("reading GGUF file '", path, "'"));
  model->path = path;
  model->files.push_back(std::move(file));  // note: moving a mapping keeps its address
  return model;
}

}  // namespace so
