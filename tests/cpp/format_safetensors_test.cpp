// Safetensors reader, Hugging Face directories (config.json, shard index) and
// open_model_file's dispatch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/hf_config.h"
#include "format/model_file.h"

namespace so {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Byte j of tensor i's data in files the builder writes.
uint8_t data_pattern(size_t tensor, uint64_t j) { return static_cast<uint8_t>(tensor * 41 + j * 3 + 5); }

// The file for a header given as text, followed by `data`.
std::vector<uint8_t> safetensors_image(std::string_view header, const std::vector<uint8_t>& data = {}) {
  std::vector<uint8_t> bytes(8 + header.size() + data.size());
  const uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(), bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return bytes;
}

// Writes valid safetensors files: tensors packed in the order added.
class SafetensorsBuilder {
 public:
  SafetensorsBuilder& tensor(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape,
                             uint64_t element_bytes) {
    uint64_t bytes = element_bytes;
    for (uint64_t dim : shape) bytes *= dim;
    header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data_.size(), data_.size() + bytes}}};
    for (uint64_t j = 0; j < bytes; ++j) data_.push_back(data_pattern(n_tensors_, j));
    ++n_tensors_;
    return *this;
  }
  json& header() { return header_; }
  std::vector<uint8_t> build() const { return safetensors_image(header_.dump(), data_); }

 private:
  json header_ = json::object();
  std::vector<uint8_t> data_;
  size_t n_tensors_ = 0;
};

std::string parse_error_of(const std::vector<uint8_t>& bytes) {
  TensorDirectory directory;
  Status status = parse_safetensors(bytes, 0, directory);
  return status.ok() ? std::string() : status.message();
}

// A header with one F32 tensor "t" whose entry is `entry`, and 64 bytes of data.
std::vector<uint8_t> one_entry_file(const json& entry) {
  return safetensors_image(json{{"t", entry}}.dump(), std::vector<uint8_t>(64));
}

#define EXPECT_CONTAINS(text, substring)                                         \
  do {                                                                           \
    const std::string text_ = (text);                                            \
    EXPECT_NE(text_.find(substring), std::string::npos) << "message: " << text_; \
  } while (0)

TEST(SafetensorsReader, ParsesTensorsInFileOrderWithDataPointers) {
  SafetensorsBuilder builder;
  builder.tensor("z.weight", "F32", {2, 3}, 4)
      .tensor("a.bias", "BF16", {4}, 2)
      .tensor("m.weight", "F16", {2, 2, 2, 1}, 2);
  builder.header()["__metadata__"] = {{"format", "pt"}};
  const std::vector<uint8_t> bytes = builder.build();
  TensorDirectory directory;
  ASSERT_TRUE(parse_safetensors(bytes, 3, directory).ok());
  ASSERT_EQ(directory.size(), 3u);
  const uint64_t data_start = bytes.size() - (24 + 8 + 16);
  const char* names[] = {"z.weight", "a.bias", "m.weight"};
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16};
  const Shape shapes[] = {{2, 3}, {4}, {2, 2, 2, 1}};
  const uint64_t offsets[] = {0, 24, 32};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(names[i]);
    const TensorInfo& info = directory.tensors()[i];  // file order, not name order
    EXPECT_EQ(info.name, names[i]);
    EXPECT_EQ(info.dtype, dtypes[i]);
    EXPECT_EQ(info.shape, shapes[i]);
    EXPECT_EQ(info.file_index, 3);
    EXPECT_EQ(info.offset, data_start + offsets[i]);
    EXPECT_EQ(info.data, bytes.data() + info.offset);
    EXPECT_EQ(info.data[0], data_pattern(i, 0));
    EXPECT_EQ(info.data[info.bytes - 1], data_pattern(i, info.bytes - 1));
  }
  EXPECT_EQ(directory.total_bytes(), 48u);
}

TEST(SafetensorsReader, AcceptsScalarsAndAnEmptyHeader) {
  TensorDirectory directory;
  ASSERT_TRUE(parse_safetensors(safetensors_image("{}  "), 0, directory).ok());
  SafetensorsBuilder builder;
  builder.tensor("scale", "F32", {}, 4);
  ASSERT_TRUE(parse_safetensors(builder.build(), 0, directory).ok());
  EXPECT_EQ(directory.find("scale")->shape.n_dims, 0);
  EXPECT_EQ(directory.find("scale")->bytes, 4u);
}

TEST(SafetensorsReader, RefusesBrokenFraming) {
  EXPECT_CONTAINS(parse_error_of({1, 2, 3}), "the file is 3 bytes, too small for a safetensors file");
  std::vector<uint8_t> long_header = safetensors_image("{}");
  long_header[0] = 200;
  EXPECT_CONTAINS(parse_error_of(long_header), "the safetensors header length (first 8 bytes) is 200, more than the 2");
  long_header[7] = 0xff;  // near 2^64: must not wrap
  EXPECT_CONTAINS(parse_error_of(long_header), "more than the 2 bytes that follow it");
  EXPECT_CONTAINS(parse_error_of(safetensors_image("[1, 2]")),
                  "the safetensors header should be a JSON object starting with '{', found \"[1, 2]\"");
  EXPECT_CONTAINS(parse_error_of(safetensors_image("{\"t\": ")), "the safetensors header is not valid JSON");
  EXPECT_CONTAINS(parse_error_of(safetensors_image("{\"a\": 1} x")), "is not valid JSON");
  EXPECT_CONTAINS(parse_error_of(safetensors_image("{\"t\": {}, \"t\": {}}")),
                  "the safetensors header has the key \"t\" twice in one object");
  EXPECT_CONTAINS(parse_error_of(safetensors_image("{\"__metadata__\": [1]}")),
                  "the safetensors header's __metadata__ should be an object, found an array");
}

TEST(SafetensorsReader, RefusesMalformedEntries) {
  EXPECT_CONTAINS(parse_error_of(one_entry_file(7)),
                  "the safetensors header entry for tensor \"t\" should be an object with dtype, shape and "
                  "data_offsets, found \"7\"");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"shape", {2}}, {"data_offsets", {0, 8}}})),
                  "tensor \"t\" should have a string \"dtype\"");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"dtype", "F32"}, {"shape", {2, -1}}, {"data_offsets", {0, 8}}})),
                  "should have a \"shape\" that is an array of non-negative integers");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"dtype", "F32"}, {"data_offsets", {0, 8}}})),
                  "should have a \"shape\"");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 0}}})),
                  "should have \"data_offsets\" [begin, end] with begin <= end");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0}}})),
                  "with begin <= end");
  EXPECT_CONTAINS(parse_error_of(one_entry_file({{"dtype", "F32"}, {"shape", {2}}})), "\"data_offsets\"");
}

TEST(SafetensorsReader, RefusesDtypesTheEngineCannotUseNamingThem) {
  for (const char* dtype : {"I64", "I8", "I32", "F64", "F8_E4M3", "BOOL", "f32"}) {
    const Status status = [&] {
      TensorDirectory directory;
      return parse_safetensors(one_entry_file({{"dtype", dtype}, {"shape", {2}}, {"data_offsets", {0, 8}}}), 0,
                               directory);
    }();
    EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
    EXPECT_CONTAINS(status.message(), str_cat("tensor \"t\" has safetensors dtype \"", dtype,
                                              "\", but only F32, F16, BF16 and U8 (MXFP4 blocks and scales) are supported; convert the model"));
  }
}

TEST(SafetensorsReader, RefusesBadShapesAndPlacement) {
  auto entry = [](std::vector<uint64_t> shape, uint64_t begin, uint64_t end) {
    return one_entry_file({{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, end}}});
  };
  EXPECT_CONTAINS(parse_error_of(entry({1, 1, 1, 1, 1}, 0, 4)), "tensor \"t\" has 5 dimensions, expected at most 4");
  EXPECT_CONTAINS(parse_error_of(entry({3, 0}, 0, 0)),
                  "tensor \"t\" has shape (3, 0) (outer to inner), but every dimension must be at least 1");
  EXPECT_CONTAINS(parse_error_of(entry({1ull << 40, 1ull << 40}, 0, 4)), "whose element count does not fit in 63 bits");
  EXPECT_CONTAINS(parse_error_of(entry({1ull << 62}, 0, 4)),
                  "tensor \"t\" of type F32 and shape (4611686018427387904) would take more than 2^63 bytes");
  EXPECT_CONTAINS(parse_error_of(entry({2, 3}, 0, 20)),
                  "tensor \"t\" (F32, shape (2, 3)) needs 24 bytes, but its data_offsets [0, 20] span 20");
  EXPECT_CONTAINS(parse_error_of(entry({20}, 0, 80)),
                  "tensor \"t\" takes bytes 0 to 80 of the data section, but the section has only 64 bytes; the file "
                  "is truncated");
  EXPECT_CONTAINS(parse_error_of(entry({2}, ~0ull - 3, ~0ull + 0)), "but the section has only 64 bytes");

  json overlapping = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
                      {"b", {{"dtype", "F16"}, {"shape", {4}}, {"data_offsets", {8, 16}}}}};
  EXPECT_CONTAINS(parse_error_of(safetensors_image(overlapping.dump(), std::vector<uint8_t>(16))),
                  "tensors \"a\" (bytes 0 to 16) and \"b\" (bytes 8 to 16) overlap in the data section");
}

// A scratch directory removed at the end of the test.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = (fs::temp_directory_path() / "format_safetensors_test_XXXXXX").string();
    SO_CHECK(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    path_ = pattern;
  }
  ~ScratchDirectory() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string string() const { return path_.string(); }

  void write(const std::string& name, std::string_view contents) const {
    FILE* file = std::fopen((path_ / name).c_str(), "wb");
    SO_CHECK(file != nullptr, "cannot write ", name);
    std::fwrite(contents.data(), 1, contents.size(), file);
    std::fclose(file);
  }
  void write(const std::string& name, const std::vector<uint8_t>& contents) const {
    write(name, std::string_view(reinterpret_cast<const char*>(contents.data()), contents.size()));
  }

 private:
  fs::path path_;
};

constexpr std::string_view kConfig = R"({
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 576,
  "num_hidden_layers": 30,
  "rms_norm_eps": 1e-05,
  "rope_theta": 100000.0,
  "tie_word_embeddings": true,
  "model_type": "llama",
  "rope_scaling": {"type": "linear", "factor": 2.0, "extra": {"depth": 3}},
  "eos_token_id": [1, 2],
  "long_factor": [1, 2.5],
  "groups": [[1, 2], [3]],
  "no_arrays": [],
  "pad_token_id": null,
  "mixed": [1, "a"],
  "objects": [{"a": 1}],
  "huge": 18446744073709551615,
  "negative": -3
})";

TEST(HfConfig, FlattensNestedObjectsAndConvertsTypes) {
  Result<Metadata> metadata = parse_hf_config(kConfig);
  ASSERT_TRUE(metadata.ok()) << metadata.status().to_string();
  EXPECT_EQ(*metadata->get_string_array("architectures"), std::vector<std::string>{"LlamaForCausalLM"});
  EXPECT_EQ(metadata->find("hidden_size")->type(), MetadataType::kI64);
  EXPECT_EQ(*metadata->get_int("num_hidden_layers"), 30);
  EXPECT_EQ(metadata->find("rms_norm_eps")->type(), MetadataType::kF64);
  EXPECT_DOUBLE_EQ(*metadata->get_float("rms_norm_eps"), 1e-5);
  EXPECT_EQ(metadata->find("rope_theta")->type(), MetadataType::kF64);
  EXPECT_EQ(*metadata->get_bool("tie_word_embeddings"), true);
  EXPECT_EQ(*metadata->get_string("rope_scaling.type"), "linear");
  EXPECT_EQ(*metadata->get_float("rope_scaling.factor"), 2.0);
  EXPECT_EQ(*metadata->get_int("rope_scaling.extra.depth"), 3);
  EXPECT_EQ(*metadata->get_int_array("eos_token_id"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(metadata->find("long_factor")->element_type(), MetadataType::kF64);
  EXPECT_EQ(*metadata->get_float_array("long_factor"), (std::vector<double>{1.0, 2.5}));
  const MetadataValue& groups = *metadata->find("groups");
  ASSERT_EQ(groups.element_type(), MetadataType::kArray);
  EXPECT_EQ(groups.as_array()[1].as_array()[0].as_int(), 3);
  EXPECT_TRUE(metadata->find("no_arrays")->as_array().empty());
  EXPECT_FALSE(metadata->contains("pad_token_id"));
  EXPECT_FALSE(metadata->contains("mixed"));
  EXPECT_FALSE(metadata->contains("objects"));
  EXPECT_EQ(metadata->find("huge")->as_uint64(), 18446744073709551615ull);
  EXPECT_EQ(*metadata->get_int("negative"), -3);
}

TEST(HfConfig, RefusesBrokenConfigs) {
  EXPECT_CONTAINS(parse_hf_config("{\"a\": ").status().message(), "config.json is not valid JSON");
  EXPECT_CONTAINS(parse_hf_config("[1]").status().message(), "config.json should hold a JSON object, found an array");
  EXPECT_CONTAINS(parse_hf_config("{\"a\": 1, \"a\": 2}").status().message(), "config.json has the key \"a\" twice");
  EXPECT_CONTAINS(parse_hf_config("{\"a\": {\"b\": 1}, \"a.b\": 2}").status().message(),
                  "config.json sets \"a.b\" twice, once as a dotted name and once as a nested object");
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "{\"x\": ";
  deep += "1" + std::string(40, '}');
  EXPECT_CONTAINS(parse_hf_config(deep).status().message(), "config.json nests objects more than 16 deep");
}

TEST(SafetensorsDirectory, OpensASingleFileModel) {
  ScratchDirectory directory;
  directory.write("config.json", kConfig);
  SafetensorsBuilder builder;
  builder.tensor("model.embed_tokens.weight", "BF16", {8, 4}, 2).tensor("model.norm.weight", "F32", {4}, 4);
  directory.write("model.safetensors", builder.build());

  Result<ModelFile> model = open_safetensors_directory(directory.string());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->format, ModelFormat::kSafetensors);
  EXPECT_EQ(model->path, directory.string());
  EXPECT_EQ(*model->metadata.get_int("num_hidden_layers"), 30);
  ASSERT_EQ(model->files.size(), 1u);
  ASSERT_EQ(model->tensors.size(), 2u);
  const TensorInfo& norm = *model->tensors.find("model.norm.weight");
  EXPECT_EQ(norm.shape, Shape{4});
  EXPECT_EQ(norm.data, model->files[0].data() + norm.offset);
  EXPECT_EQ(norm.data[15], data_pattern(1, 15));

  Result<ModelFile> dispatched = open_model_file(directory.string());
  ASSERT_TRUE(dispatched.ok()) << dispatched.status().to_string();
  EXPECT_EQ(dispatched->tensors.size(), 2u);
}

// Two shards: a, c in shard 1; b in shard 2.
void write_sharded_model(const ScratchDirectory& directory, const json& weight_map) {
  directory.write("config.json", kConfig);
  SafetensorsBuilder first, second;
  first.tensor("a", "F32", {2}, 4).tensor("c", "F16", {3}, 2);
  second.tensor("b", "BF16", {5}, 2);
  directory.write("model-00001-of-00002.safetensors", first.build());
  directory.write("model-00002-of-00002.safetensors", second.build());
  directory.write("model.safetensors.index.json",
                  json{{"metadata", {{"total_size", 24}}}, {"weight_map", weight_map}}.dump());
}

const json kWeightMap = {{"a", "model-00001-of-00002.safetensors"},
                         {"b", "model-00002-of-00002.safetensors"},
                         {"c", "model-00001-of-00002.safetensors"}};

std::string open_error_of(const ScratchDirectory& directory) {
  Result<ModelFile> model = open_safetensors_directory(directory.string());
  return model.ok() ? std::string() : model.status().message();
}

TEST(SafetensorsDirectory, OpensAShardedModel) {
  ScratchDirectory directory;
  write_sharded_model(directory, kWeightMap);
  Result<ModelFile> model = open_safetensors_directory(directory.string());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_EQ(model->files.size(), 2u);
  ASSERT_EQ(model->tensors.size(), 3u);
  for (const char* name : {"a", "b", "c"}) {
    const TensorInfo& info = *model->tensors.find(name);
    EXPECT_EQ(info.file_index, name[0] == 'b' ? 1 : 0) << name;
    const MappedFile& file = model->files[static_cast<size_t>(info.file_index)];
    EXPECT_EQ(info.data, file.data() + info.offset);
    EXPECT_LE(info.offset + info.bytes, file.size());
  }
  EXPECT_EQ(model->tensors.find("b")->data[9], data_pattern(0, 9));
  EXPECT_EQ(model->tensors.find("c")->data[5], data_pattern(1, 5));
}

TEST(SafetensorsDirectory, RefusesAnIndexThatDisagreesWithItsShards) {
  {
    ScratchDirectory directory;
    json weight_map = kWeightMap;
    weight_map["d"] = "model-00002-of-00002.safetensors";
    write_sharded_model(directory, weight_map);
    EXPECT_CONTAINS(open_error_of(directory),
                    "model.safetensors.index.json lists tensor \"d\" in shard \"model-00002-of-00002.safetensors\", "
                    "but that shard does not contain it");
  }
  {
    ScratchDirectory directory;
    json weight_map = kWeightMap;
    weight_map.erase("c");
    write_sharded_model(directory, weight_map);
    EXPECT_CONTAINS(open_error_of(directory),
                    "tensor \"c\" is in shard \"model-00001-of-00002.safetensors\" but model.safetensors.index.json "
                    "does not list it");
  }
  {
    ScratchDirectory directory;
    json weight_map = kWeightMap;
    weight_map["c"] = "model-00002-of-00002.safetensors";
    write_sharded_model(directory, weight_map);
    EXPECT_CONTAINS(open_error_of(directory), "but model.safetensors.index.json says it is in");
  }
  {
    ScratchDirectory directory;
    json weight_map = kWeightMap;
    weight_map["b"] = "model-00003-of-00002.safetensors";
    write_sharded_model(directory, weight_map);
    EXPECT_CONTAINS(open_error_of(directory),
                    "shard \"model-00003-of-00002.safetensors\" listed in model.safetensors.index.json is missing");
  }
  {
    ScratchDirectory directory;
    json weight_map = kWeightMap;
    weight_map["b"] = "../model-00002-of-00002.safetensors";
    write_sharded_model(directory, weight_map);
    EXPECT_CONTAINS(open_error_of(directory), "expected the file name of a shard in the model directory");
  }
  {
    ScratchDirectory directory;
    write_sharded_model(directory, kWeightMap);
    SafetensorsBuilder with_duplicate;
    with_duplicate.tensor("b", "BF16", {5}, 2).tensor("a", "F32", {2}, 4);
    directory.write("model-00002-of-00002.safetensors", with_duplicate.build());
    EXPECT_CONTAINS(open_error_of(directory), "tensor \"a\" appears in two safetensors files (numbers 0 and 1)");
  }
  {
    ScratchDirectory directory;
    write_sharded_model(directory, kWeightMap);
    directory.write("model.safetensors.index.json", R"({"metadata": {}})");
    EXPECT_CONTAINS(open_error_of(directory),
                    "model.safetensors.index.json should be an object with a \"weight_map\" object");
  }
}

TEST(SafetensorsDirectory, RefusesIncompleteDirectories) {
  ScratchDirectory directory;
  EXPECT_CONTAINS(open_error_of(directory), "has no config.json; a Hugging Face model directory needs it");
  directory.write("config.json", "{\"a\": ");
  EXPECT_CONTAINS(open_error_of(directory), "config.json': config.json is not valid JSON");
  directory.write("config.json", kConfig);
  EXPECT_CONTAINS(open_error_of(directory),
                  "has neither model.safetensors nor model.safetensors.index.json (it has no .safetensors files)");
  directory.write("consolidated.safetensors", safetensors_image("{}"));
  EXPECT_CONTAINS(open_error_of(directory), "(it has \"consolidated.safetensors\")");
  directory.write("model.safetensors", safetensors_image("{\"t\": 1}"));
  EXPECT_CONTAINS(open_error_of(directory), "model.safetensors': the safetensors header entry for tensor \"t\"");
  EXPECT_EQ(open_safetensors_directory((directory.path() / "missing").string()).status().code(), ErrorCode::kNotFound);
  EXPECT_CONTAINS(open_safetensors_directory((directory.path() / "config.json").string()).status().message(),
                  "is not a directory; expected a Hugging Face model directory");
}

TEST(OpenModelFile, DispatchesOnWhatThePathIs) {
  ScratchDirectory directory;
  // The smallest GGUF file: magic, version 3, no tensors, no metadata.
  std::vector<uint8_t> gguf = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  gguf.resize(24, 0);
  directory.write("tiny.gguf", gguf);
  Result<ModelFile> model = open_model_file((directory.path() / "tiny.gguf").string());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->format, ModelFormat::kGguf);

  SafetensorsBuilder builder;
  builder.tensor("a", "F32", {2}, 4);
  directory.write("model.safetensors", builder.build());
  Result<ModelFile> single = open_model_file((directory.path() / "model.safetensors").string());
  EXPECT_EQ(single.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_CONTAINS(single.status().message(),
                  "is a single safetensors file; pass the directory that holds it together with config.json");

  directory.write("notes.txt", std::string_view("hello world"));
  EXPECT_CONTAINS(open_model_file((directory.path() / "notes.txt").string()).status().message(),
                  "not a GGUF file: expected the magic \"GGUF\" at offset 0, found \"hello wo\"");
  EXPECT_CONTAINS(open_model_file((directory.path() / "absent.gguf").string()).status().message(),
                  "absent.gguf' does not exist; pass a .gguf file or a Hugging Face model directory");
}

}  // namespace
}  // namespace so
