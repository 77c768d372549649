// GGUF reader: valid files round-trip, and every malformed header gives its documented error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "format/model_file.h"

namespace so {
namespace {

// Little-endian byte image under construction.
struct ByteWriter {
  std::vector<uint8_t> bytes;

  template <typename T>
  ByteWriter& put(T value) {
    const auto* raw = reinterpret_cast<const uint8_t*>(&value);
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
    return *this;
  }
  ByteWriter& str(std::string_view text) {
    put<uint64_t>(text.size());
    bytes.insert(bytes.end(), text.begin(), text.end());
    return *this;
  }
  ByteWriter& type(MetadataType type) { return put<uint32_t>(static_cast<uint32_t>(type)); }
};

// Byte j of tensor i's data in files the builder writes.
uint8_t data_pattern(size_t tensor, uint64_t j) { return static_cast<uint8_t>(tensor * 37 + j * 7 + 1); }

struct TestTensor {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first, as GGUF stores it
  uint32_t ggml_type;
  uint64_t data_bytes;
  std::optional<uint64_t> offset;  // relative to the data section; default: packed and aligned

  TestTensor(std::string name_, std::vector<uint64_t> ne_, uint32_t ggml_type_, uint64_t data_bytes_,
             std::optional<uint64_t> offset_ = std::nullopt)
      : name(std::move(name_)), ne(std::move(ne_)), ggml_type(ggml_type_), data_bytes(data_bytes_), offset(offset_) {}
};

// Writes GGUF images, valid by default; fields can be overridden to make malformed ones.
class GgufBuilder {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // padding used; write general.alignment with kv_u32 to declare another
  std::optional<uint64_t> n_tensors_override;
  std::optional<uint64_t> n_metadata_override;

  GgufBuilder& kv(std::string_view key, MetadataType type, const std::function<void(ByteWriter&)>& write_value) {
    metadata_.str(key).type(type);
    write_value(metadata_);
    ++n_metadata_;
    return *this;
  }
  GgufBuilder& kv_u32(std::string_view key, uint32_t value) {
    return kv(key, MetadataType::kU32, [&](ByteWriter& w) { w.put(value); });
  }
  GgufBuilder& kv_string(std::string_view key, std::string_view value) {
    return kv(key, MetadataType::kString, [&](ByteWriter& w) { w.str(value); });
  }
  GgufBuilder& tensor(TestTensor tensor) {
    tensors_.push_back(std::move(tensor));
    return *this;
  }

  // Byte offset of each tensor's data relative to the data section.
  std::vector<uint64_t> tensor_offsets() const {
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const TestTensor& t : tensors_) {
      offsets.push_back(t.offset.value_or(next));
      next = (offsets.back() + t.data_bytes + alignment - 1) / alignment * alignment;
    }
    return offsets;
  }

  size_t header_size() const { return build_header().bytes.size(); }

  std::vector<uint8_t> build() const {
    ByteWriter file = build_header();
    while (file.bytes.size() % alignment != 0) file.bytes.push_back(0);
    const size_t data_start = file.bytes.size();
    const std::vector<uint64_t> offsets = tensor_offsets();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      // absurd offsets and sizes in error tests: leave the file short
      if (offsets[i] >= (1u << 24) || tensors_[i].data_bytes >= (1u << 24)) continue;
      const uint64_t end = data_start + offsets[i] + tensors_[i].data_bytes;
      if (file.bytes.size() < end) file.bytes.resize(end, 0);
      for (uint64_t j = 0; j < tensors_[i].data_bytes; ++j)
        file.bytes[data_start + offsets[i] + j] = data_pattern(i, j);
    }
    return file.bytes;
  }

 private:
  ByteWriter build_header() const {
    ByteWriter file;
    file.bytes = {'G', 'G', 'U', 'F'};
    file.put(version);
    file.put<uint64_t>(n_tensors_override.value_or(tensors_.size()));
    file.put<uint64_t>(n_metadata_override.value_or(n_metadata_));
    file.bytes.insert(file.bytes.end(), metadata_.bytes.begin(), metadata_.bytes.end());
    const std::vector<uint64_t> offsets = tensor_offsets();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      file.str(tensors_[i].name).put<uint32_t>(static_cast<uint32_t>(tensors_[i].ne.size()));
      for (uint64_t n : tensors_[i].ne) file.put(n);
      file.put(tensors_[i].ggml_type).put(offsets[i]);
    }
    return file;
  }

  ByteWriter metadata_;
  uint64_t n_metadata_ = 0;
  std::vector<TestTensor> tensors_;
};

constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlQ5_K = 13, kGgmlI64 = 27;

GgufBuilder one_tensor_file(TestTensor tensor) {
  GgufBuilder builder;
  builder.kv_string("general.architecture", "llama").tensor(std::move(tensor));
  return builder;
}

// The error message of parsing `bytes`, or "" when it parsed.
std::string parse_error_of(const std::vector<uint8_t>& bytes) {
  Result<ModelFile> model = parse_gguf(bytes);
  return model.ok() ? std::string() : model.status().message();
}

#define EXPECT_PARSE_ERROR(bytes, substring)                                           \
  do {                                                                                 \
    std::string message_ = parse_error_of(bytes);                                      \
    EXPECT_NE(message_.find(substring), std::string::npos) << "message: " << message_; \
  } while (0)

TEST(GgufReader, RoundTripsMetadataOfEveryTypeAndTensors) {
  GgufBuilder builder;
  builder.alignment = 64;
  builder.kv_u32("general.alignment", 64)
      .kv("u8", MetadataType::kU8, [](ByteWriter& w) { w.put<uint8_t>(200); })
      .kv("i8", MetadataType::kI8, [](ByteWriter& w) { w.put<int8_t>(-100); })
      .kv("u16", MetadataType::kU16, [](ByteWriter& w) { w.put<uint16_t>(60000); })
      .kv("i16", MetadataType::kI16, [](ByteWriter& w) { w.put<int16_t>(-30000); })
      .kv_u32("u32", 4000000000u)
      .kv("i32", MetadataType::kI32, [](ByteWriter& w) { w.put<int32_t>(-2000000000); })
      .kv("f32", MetadataType::kF32, [](ByteWriter& w) { w.put<float>(1.5f); })
      .kv("bool", MetadataType::kBool, [](ByteWriter& w) { w.put<uint8_t>(1); })
      .kv_string("string", "h\xc3\xa9llo")
      .kv("u64", MetadataType::kU64, [](ByteWriter& w) { w.put<uint64_t>(18000000000000000000ull); })
      .kv("i64", MetadataType::kI64, [](ByteWriter& w) { w.put<int64_t>(-9000000000000000000ll); })
      .kv("f64", MetadataType::kF64, [](ByteWriter& w) { w.put<double>(-2.25); })
      .kv("strings", MetadataType::kArray,
          [](ByteWriter& w) { w.type(MetadataType::kString).put<uint64_t>(3).str("a").str("").str("ccc"); })
      .kv("floats", MetadataType::kArray,
          [](ByteWriter& w) { w.type(MetadataType::kF32).put<uint64_t>(2).put(0.5f).put(-1.0f); })
      .kv("empty", MetadataType::kArray, [](ByteWriter& w) { w.type(MetadataType::kI32).put<uint64_t>(0); })
      .kv("nested", MetadataType::kArray, [](ByteWriter& w) {
        w.type(MetadataType::kArray).put<uint64_t>(2);
        w.type(MetadataType::kI16).put<uint64_t>(2).put<int16_t>(7).put<int16_t>(-8);
        w.type(MetadataType::kString).put<uint64_t>(1).str("inner");
      });
  builder.tensor({"token_embd.weight", {64, 3}, kGgmlQ8_0, 3 * 2 * 34});
  builder.tensor({"norm.weight", {5}, kGgmlF32, 20});
  builder.tensor({"blk.0.ffn_down.weight", {256, 2, 1}, kGgmlQ5_K, 2 * 176});  // readable, not computable
  builder.tensor({"blk.0.attn_q.weight", {3, 2, 2, 2}, kGgmlF16, 48});
  const std::vector<uint8_t> bytes = builder.build();

  Result<ModelFile> model = parse_gguf(bytes);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->format, ModelFormat::kGguf);
  EXPECT_EQ(model->gguf_version, 3u);
  EXPECT_EQ(model->gguf_alignment, 64u);

  const Metadata& metadata = model->metadata;
  EXPECT_EQ(metadata.entries().size(), 17u);
  EXPECT_EQ(metadata.find("u8")->type(), MetadataType::kU8);
  EXPECT_EQ(*metadata.get_int("u8"), 200);
  EXPECT_EQ(*metadata.get_int("i8"), -100);
  EXPECT_EQ(*metadata.get_int("u16"), 60000);
  EXPECT_EQ(*metadata.get_int("i16"), -30000);
  EXPECT_EQ(*metadata.get_int("u32"), 4000000000ll);
  EXPECT_EQ(metadata.find("i32")->type(), MetadataType::kI32);
  EXPECT_EQ(*metadata.get_int("i32"), -2000000000);
  EXPECT_EQ(metadata.find("f32")->type(), MetadataType::kF32);
  EXPECT_EQ(*metadata.get_float("f32"), 1.5);
  EXPECT_EQ(*metadata.get_bool("bool"), true);
  EXPECT_EQ(*metadata.get_string("string"), "h\xc3\xa9llo");
  EXPECT_EQ(metadata.find("u64")->as_uint64(), 18000000000000000000ull);
  EXPECT_EQ(*metadata.get_int("i64"), -9000000000000000000ll);
  EXPECT_EQ(metadata.find("f64")->type(), MetadataType::kF64);
  EXPECT_EQ(*metadata.get_float("f64"), -2.25);
  EXPECT_EQ(*metadata.get_string_array("strings"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(*metadata.get_float_array("floats"), (std::vector<double>{0.5, -1.0}));
  EXPECT_EQ(metadata.find("empty")->element_type(), MetadataType::kI32);
  EXPECT_TRUE(metadata.find("empty")->as_array().empty());
  const MetadataValue& nested = *metadata.find("nested");
  ASSERT_EQ(nested.element_type(), MetadataType::kArray);
  ASSERT_EQ(nested.as_array().size(), 2u);
  EXPECT_EQ(nested.as_array()[0].element_type(), MetadataType::kI16);
  EXPECT_EQ(nested.as_array()[0].as_array()[1].as_int(), -8);
  EXPECT_EQ(nested.as_array()[1].as_array()[0].as_string(), "inner");

  ASSERT_EQ(model->tensors.size(), 4u);
  struct Expected {
    const char* name;
    DType dtype;
    Shape shape;
    uint64_t bytes;
  };
  const Expected expected[] = {{"token_embd.weight", DType::kQ8_0, {3, 64}, 204},
                               {"norm.weight", DType::kF32, {5}, 20},
                               {"blk.0.ffn_down.weight", DType::kQ5_K, {1, 2, 256}, 352},
                               {"blk.0.attn_q.weight", DType::kF16, {2, 2, 2, 3}, 48}};
  const size_t data_start = (builder.header_size() + 63) / 64 * 64;
  const std::vector<uint64_t> offsets = builder.tensor_offsets();
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(expected[i].name);
    const TensorInfo* info = model->tensors.find(expected[i].name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, expected[i].dtype);
    EXPECT_EQ(info->shape, expected[i].shape) << info->shape.to_string();
    EXPECT_EQ(info->bytes, expected[i].bytes);
    EXPECT_EQ(info->view().bytes(), static_cast<int64_t>(expected[i].bytes));
    EXPECT_EQ(info->offset, data_start + offsets[i]);
    EXPECT_EQ(info->offset % 64, 0u);
    EXPECT_EQ(info->data, bytes.data() + info->offset);
    EXPECT_EQ(info->data[0], data_pattern(i, 0));
    EXPECT_EQ(info->data[info->bytes - 1], data_pattern(i, info->bytes - 1));
  }
  EXPECT_EQ(model->tensors.tensors()[0].name, "token_embd.weight");  // file order is kept
}

TEST(GgufReader, ReadsVersion2AndDefaultsTheAlignmentTo32) {
  GgufBuilder builder = one_tensor_file({"a", {3}, kGgmlF32, 12});
  builder.tensor({"b", {1}, kGgmlF32, 4});
  builder.version = 2;
  Result<ModelFile> model = parse_gguf(builder.build());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->gguf_version, 2u);
  EXPECT_EQ(model->gguf_alignment, 32u);
  EXPECT_EQ(model->tensors.find("b")->offset - model->tensors.find("a")->offset, 32u);
}

TEST(GgufReader, ReadsAFileWithNoTensorsAndNoPadding) {
  GgufBuilder builder;
  builder.kv_string("general.architecture", "llama");
  std::vector<uint8_t> bytes = builder.build();
  bytes.resize(builder.header_size());
  Result<ModelFile> model = parse_gguf(bytes);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->tensors.size(), 0u);
  EXPECT_EQ(*model->metadata.get_string("general.architecture"), "llama");
}

TEST(GgufReader, RefusesFilesThatAreNotGguf) {
  EXPECT_PARSE_ERROR(std::vector<uint8_t>{}, "the file is empty");
  std::vector<uint8_t> zip = {'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0};
  EXPECT_PARSE_ERROR(zip, "not a GGUF file: expected the magic \"GGUF\" at offset 0, found \"PK\\x03\\x04");
  EXPECT_PARSE_ERROR(zip, "(50 4b 03 04 14 00 00 00)");
  EXPECT_PARSE_ERROR((std::vector<uint8_t>{'G', 'G'}), "found \"GG\"");
  EXPECT_PARSE_ERROR((std::vector<uint8_t>{'t', 'j', 'g', 'g', 3, 0, 0, 0}), "pre-GGUF llama.cpp file");
  EXPECT_EQ(parse_gguf(zip).status().code(), ErrorCode::kFormat);
}

TEST(GgufReader, RefusesVersion1BigEndianAndUnknownVersions) {
  GgufBuilder builder = one_tensor_file({"a", {3}, kGgmlF32, 12});
  builder.version = 1;
  EXPECT_PARSE_ERROR(builder.build(), "GGUF version 1 is not supported");
  EXPECT_EQ(parse_gguf(builder.build()).status().code(), ErrorCode::kUnsupported);
  builder.version = 0x03000000;  // 3 as a big-endian writer stores it
  EXPECT_PARSE_ERROR(builder.build(), "this GGUF file is big-endian");
  EXPECT_PARSE_ERROR(builder.build(), "which is 3 byte-swapped");
  builder.version = 7;
  EXPECT_PARSE_ERROR(builder.build(), "unsupported GGUF version 7");
}

TEST(GgufReader, TruncationAnywhereIsAnErrorNamingTheField) {
  GgufBuilder builder = one_tensor_file({"a", {3}, kGgmlF32, 12});
  builder.kv("list", MetadataType::kArray,
             [](ByteWriter& w) { w.type(MetadataType::kU16).put<uint64_t>(2).put<uint16_t>(1).put<uint16_t>(2); });
  const std::vector<uint8_t> bytes = builder.build();
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_FALSE(parse_gguf(prefix).ok()) << "prefix of " << length << " bytes parsed";
  }
  EXPECT_PARSE_ERROR(
      std::vector<uint8_t>(bytes.begin(), bytes.begin() + 6),
      "the file ends inside the GGUF header: the version at offset 4 needs 4 bytes, but only 2 are left");
  EXPECT_PARSE_ERROR(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20), "the metadata entry count at offset 16");
  EXPECT_PARSE_ERROR(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), "the file is truncated");
}

TEST(GgufReader, RefusesLengthsAndCountsPastTheEndOfTheFile) {
  GgufBuilder long_string;
  long_string.kv("general.name", MetadataType::kString, [](ByteWriter& w) { w.put<uint64_t>(1000).put<uint32_t>(0); });
  EXPECT_PARSE_ERROR(long_string.build(), "metadata entry 0 (\"general.name\"): a string value's length at offset");
  EXPECT_PARSE_ERROR(long_string.build(), "claims 1000 bytes, but only");

  GgufBuilder huge_key;
  huge_key.kv_u32("k", 1);
  std::vector<uint8_t> bytes = huge_key.build();
  const uint64_t huge = ~0ull;
  std::memcpy(bytes.data() + 24, &huge, 8);  // the key's length
  EXPECT_PARSE_ERROR(bytes, "the key length at offset 24 claims 18446744073709551615 bytes");

  GgufBuilder many_entries;
  many_entries.kv_u32("k", 1);
  many_entries.n_metadata_override = 1ull << 40;
  EXPECT_PARSE_ERROR(many_entries.build(), "the GGUF header claims 1099511627776 metadata entries, but the");

  GgufBuilder many_tensors = one_tensor_file({"a", {3}, kGgmlF32, 12});
  many_tensors.n_tensors_override = 1ull << 60;
  EXPECT_PARSE_ERROR(many_tensors.build(), "the GGUF header claims 1152921504606846976 tensors, but the");

  GgufBuilder long_array;
  long_array.kv("tokens", MetadataType::kArray,
                [](ByteWriter& w) { w.type(MetadataType::kString).put<uint64_t>(1ull << 62).str("x"); });
  EXPECT_PARSE_ERROR(long_array.build(), "claims 4611686018427387904 elements of type string (at least 8 bytes each)");
}

TEST(GgufReader, RefusesBadMetadata) {
  GgufBuilder bad_type;
  bad_type.kv("k", static_cast<MetadataType>(13), [](ByteWriter& w) { w.put<uint32_t>(0); });
  EXPECT_PARSE_ERROR(bad_type.build(), "the value type at offset 33 is 13, which is not a GGUF value type");

  GgufBuilder bad_element_type;
  bad_element_type.kv("k", MetadataType::kArray, [](ByteWriter& w) { w.put<uint32_t>(99).put<uint64_t>(0); });
  EXPECT_PARSE_ERROR(bad_element_type.build(), "the array element type at offset 37 is 99");

  GgufBuilder deep;
  deep.kv("deep", MetadataType::kArray, [](ByteWriter& w) {
    for (int i = 0; i < 20; ++i) w.type(MetadataType::kArray).put<uint64_t>(1);
    w.type(MetadataType::kU8).put<uint64_t>(0);
  });
  EXPECT_PARSE_ERROR(deep.build(), "arrays are nested more than 8 deep");

  GgufBuilder duplicate;
  duplicate.kv_u32("llama.block_count", 1).kv_string("general.name", "x").kv_u32("llama.block_count", 2);
  EXPECT_PARSE_ERROR(duplicate.build(),
                     "metadata key \"llama.block_count\" appears twice (the second time as entry 2)");
}

TEST(GgufReader, RefusesBadAlignment) {
  GgufBuilder wrong_type = one_tensor_file({"a", {3}, kGgmlF32, 12});
  wrong_type.kv("general.alignment", MetadataType::kU64, [](ByteWriter& w) { w.put<uint64_t>(32); });
  EXPECT_PARSE_ERROR(wrong_type.build(), "general.alignment should be a uint32, found uint64 32");
  for (uint32_t alignment : {0u, 48u, 3u}) {
    GgufBuilder not_power = one_tensor_file({"a", {3}, kGgmlF32, 12});
    not_power.kv_u32("general.alignment", alignment);
    EXPECT_PARSE_ERROR(not_power.build(), str_cat("general.alignment is ", alignment, ", expected a power of two"));
  }
}

TEST(GgufReader, RefusesBadTensorShapesAndTypes) {
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {1, 1, 1, 1, 1}, kGgmlF32, 4}).build(),
                     "tensor info 0: tensor \"t\" has 5 dimensions, expected at most 4");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {4, 0}, kGgmlF32, 0}).build(),
                     "tensor \"t\" has shape (0, 4) (outer to inner), but every dimension must be at least 1");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {1ull << 32, 1ull << 32}, kGgmlF32, 0}).build(),
                     "whose element count does not fit in 63 bits");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {~0ull}, kGgmlF32, 0}).build(), "whose element count does not fit");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {1ull << 31, 1ull << 31}, kGgmlI64, 0}).build(),
                     "tensor \"t\" of type I64 and shape (2147483648, 2147483648) would take more than 2^63 bytes");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {33, 2}, kGgmlQ4_0, 36}).build(),
                     "tensor \"t\" of type Q4_0 has rows of 33 elements (shape (2, 33)), which is not a multiple of "
                     "the type's block size 32");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {32}, 4, 18}).build(), "tensor \"t\" has ggml type number 4");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {32}, 1000, 18}).build(), "which this engine does not know");
}

TEST(GgufReader, RefusesBadTensorPlacement) {
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {3}, kGgmlF32, 12, 16}).build(),
                     "tensor \"t\" starts at data offset 16, which is not a multiple of the file's alignment 32");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {3}, kGgmlF32, 12, 1ull << 30}).build(),
                     "tensor \"t\" (F32, shape (3)) takes bytes 1073741824 to 1073741836 of the data section, but "
                     "the section has only 0 bytes");
  EXPECT_PARSE_ERROR(one_tensor_file({"t", {16}, kGgmlF32, 64, ~0ull - 31}).build(), "to beyond 2^64");

  GgufBuilder short_data = one_tensor_file({"t", {3}, kGgmlF32, 12});
  std::vector<uint8_t> bytes = short_data.build();
  bytes.resize(bytes.size() - 1);
  EXPECT_PARSE_ERROR(bytes, "but the section has only 11 bytes; the file is truncated");
  bytes.resize(short_data.header_size());  // cut before the padding
  ASSERT_NE(bytes.size() % 32, 0u);
  EXPECT_PARSE_ERROR(bytes, "the tensor data should start at offset 128, past the end of the file (size 102)");

  GgufBuilder overlap = one_tensor_file({"first", {16}, kGgmlF32, 64, 0});
  overlap.tensor({"second", {8}, kGgmlF32, 32, 32});
  EXPECT_PARSE_ERROR(overlap.build(),
                     "tensors \"first\" (bytes 0 to 64) and \"second\" (bytes 32 to 64) overlap in the data section");

  GgufBuilder duplicate = one_tensor_file({"same", {8}, kGgmlF32, 32});
  duplicate.tensor({"other", {8}, kGgmlF32, 32}).tensor({"same", {8}, kGgmlF32, 32});
  EXPECT_PARSE_ERROR(duplicate.build(), "tensor \"same\" is described twice (tensor infos 0 and 2)");
}

TEST(GgufReader, SurvivesRandomCorruption) {
  GgufBuilder builder = one_tensor_file({"a", {64, 2}, kGgmlQ8_0, 136});
  builder.kv("tokens", MetadataType::kArray,
             [](ByteWriter& w) { w.type(MetadataType::kString).put<uint64_t>(2).str("hello").str("world"); });
  builder.tensor({"b", {4}, kGgmlF32, 16});
  const std::vector<uint8_t> original = builder.build();
  std::mt19937 random(1234);
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<uint8_t> bytes = original;
    const int n_flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < n_flips; ++i) bytes[random() % bytes.size()] = static_cast<uint8_t>(random());
    Result<ModelFile> model = parse_gguf(bytes);
    if (!model.ok()) {
      EXPECT_FALSE(model.status().message().empty());
      continue;
    }
    for (const TensorInfo& info : model->tensors.tensors()) {
      ASSERT_GE(info.data, bytes.data());
      ASSERT_LE(info.data + info.bytes, bytes.data() + bytes.size());
    }
  }
}

TEST(GgufReader, OpenGgufMapsTheFileAndNamesItInErrors) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / str_cat("format_gguf_test_", ::getpid(), ".gguf");
  std::vector<uint8_t> bytes = one_tensor_file({"a", {3}, kGgmlF32, 12}).build();
  auto write = [&](const std::vector<uint8_t>& contents) {
    FILE* file = std::fopen(path.c_str(), "wb");
    ASSERT_NE(file, nullptr);
    std::fwrite(contents.data(), 1, contents.size(), file);
    std::fclose(file);
  };
  write(bytes);
  Result<ModelFile> model = open_gguf(path.string());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->path, path.string());
  ASSERT_EQ(model->files.size(), 1u);
  const TensorInfo& a = *model->tensors.find("a");
  EXPECT_EQ(a.data, model->files[0].data() + a.offset);
  EXPECT_EQ(a.data[11], data_pattern(0, 11));

  bytes[4] = 1;  // version 1
  write(bytes);
  Result<ModelFile> old = open_gguf(path.string());
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().message().find(str_cat("reading GGUF file '", path.string(), "': GGUF version 1")), 0u)
      << old.status().message();
  std::filesystem::remove(path);
  EXPECT_EQ(open_gguf(path.string()).status().code(), ErrorCode::kIo);
}

// The default model that scripts/setup.sh fetches.
std::string default_model_path() {
  if (const char* path = std::getenv("SPECOFFLOAD_DEFAULT_MODEL"); path != nullptr && *path != '\0') return path;
  const char* home = std::getenv("HOME");
  return str_cat(home ? home : "/root", "/.cache/specoffload/models/SmolLM2-135M-Instruct.Q4_1.gguf");
}

TEST(GgufReader, LoadsTheDefaultModel) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not found at " << path;
  Result<ModelFile> model = open_model_file(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->format, ModelFormat::kGguf);
  EXPECT_EQ(model->gguf_version, 3u);
  EXPECT_EQ(model->tensors.size(), 272u);
  EXPECT_EQ(*model->metadata.get_string("general.architecture"), "llama");
  EXPECT_EQ(*model->metadata.get_int("llama.block_count"), 30);
  const TensorInfo* embedding = model->tensors.find("token_embd.weight");
  ASSERT_NE(embedding, nullptr);
  EXPECT_EQ(embedding->dtype, DType::kQ8_0);
  EXPECT_EQ(embedding->shape, (Shape{49152, 576}));
  EXPECT_EQ(embedding->bytes, 49152u * 576 / 32 * 34);
  EXPECT_EQ(model->tensors.find("blk.0.attn_k.weight")->shape, (Shape{192, 576}));
  EXPECT_EQ(model->tensors.find("blk.0.attn_k.weight")->dtype, DType::kQ4_1);
  EXPECT_EQ(model->metadata.get_string_array("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(model->metadata.get_string_array("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ((*model->metadata.get_string_array("tokenizer.ggml.tokens"))[1], "<|im_start|>");
  uint64_t end_of_data = 0;
  for (const TensorInfo& info : model->tensors.tensors()) end_of_data = std::max(end_of_data, info.offset + info.bytes);
  EXPECT_LE(end_of_data, model->files[0].size());
}

}  // namespace
}  // namespace so
