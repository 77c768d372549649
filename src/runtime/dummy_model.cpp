#include "runtime/dummy_model.h"

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "base/strings.h"
#include "format/hf_config.h"
#include "model/weights.h"
#include "tensor/blocks.h"

namespace so {

namespace {

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Random 16-bit floats of magnitude in [2^-9, 2^-4) (weights) or [0.5, 2) (norms), random
// sign; bf16 or f16 bit patterns; f32 values the same way.
void fill_random(uint8_t* data, size_t bytes, DType dtype, bool near_one, uint64_t seed) {
  const int n_threads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  const size_t words = bytes / 8;
  for (int t = 0; t < n_threads; ++t) {
    threads.emplace_back([=] {
      uint64_t state = seed * 0x100000001B3ull + uint64_t(t);
      auto* out = reinterpret_cast<uint64_t*>(data);
      for (size_t i = words * t / n_threads; i < words * (t + 1) / n_threads; ++i) {
        uint64_t r = splitmix(state), patterns[4];
        for (int k = 0; k < 4; ++k, r >>= 16) {
          const uint64_t sign = near_one ? 0 : (r & 1);
          const uint64_t mantissa = (r >> 1) & 0x7F;
          if (dtype == DType::kF16) {
            const uint64_t exponent = near_one ? 14 + ((r >> 8) & 1) : 6 + ((r >> 8) % 5);
            patterns[k] = (sign << 15) | (exponent << 10) | (mantissa << 3);
          } else {  // bf16, and the upper half of an f32
            const uint64_t exponent = near_one ? 126 + ((r >> 8) & 1) : 118 + ((r >> 8) % 5);
            patterns[k] = (sign << 15) | (exponent << 7) | mantissa;
          }
        }
        const uint64_t word = dtype == DType::kF32
                                  ? (patterns[0] << 16) | (patterns[1] << 48)
                                  : patterns[0] | (patterns[1] << 16) | (patterns[2] << 32) | (patterns[3] << 48);
        out[i] = word;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// Random MXFP4 blocks: any nibbles, shared exponents 2^-8 .. 2^-4 (no NaN or huge scales).
void fill_mxfp4(uint8_t* data, size_t bytes, uint64_t seed) {
  uint64_t state = seed;
  for (size_t block = 0; block + sizeof(BlockMXFP4) <= bytes; block += sizeof(BlockMXFP4)) {
    uint64_t r = splitmix(state);
    data[block] = uint8_t(119 + r % 5);
    for (size_t i = 1; i < sizeof(BlockMXFP4); ++i) {
      if (i % 8 == 0) r = splitmix(state);
      data[block + i] = uint8_t(r >> (8 * (i % 8)));
    }
  }
}

// The dtype a matrix gets: the config's, or MXFP4 for a gpt-oss config's experts when its
// quantization_config says so (as the released checkpoints do).
DType dummy_dtype(const std::string& name, DType dtype, bool mxfp4_experts) {
  const bool expert = name.find("_exps.weight") != std::string::npos;
  return mxfp4_experts && expert ? DType::kMXFP4 : dtype;
}

Result<DType> dtype_of_config(const std::string& torch_dtype) {
  if (torch_dtype == "bfloat16" || torch_dtype.empty()) return DType::kBF16;
  if (torch_dtype == "float16") return DType::kF16;
  if (torch_dtype == "float32") return DType::kF32;
  return unsupported("torch_dtype '", torch_dtype, "' has no dummy weights; use bfloat16, float16 or float32");
}

}  // namespace

namespace {

// The config.json at `path` (or in it): its text, and the shapes it gives in `file`.
Result<ModelConfig> read_dummy_config(const std::string& path, ModelFile& file, std::string& text,
                                      std::filesystem::path& config_path) {
  config_path = path;
  std::error_code error;
  if (std::filesystem::is_directory(config_path, error)) config_path /= "config.json";
  SO_ASSIGN_OR_RETURN(text, read_text_file(config_path.string()));
  file.format = ModelFormat::kSafetensors;
  file.path = config_path.parent_path().string();
  auto metadata = parse_hf_config(text);
  if (!metadata.ok()) return metadata.status().with_context(str_cat("reading '", config_path.string(), "'"));
  file.metadata = std::move(metadata).value();
  auto shapes = model_config_from_file(file);
  if (!shapes.ok()) return shapes.status().with_context(str_cat("dummy model from '", config_path.string(), "'"));
  return shapes;
}

}  // namespace

Result<std::unique_ptr<Model>> load_dummy_model(const std::string& path, uint64_t seed) {
  auto model = std::make_unique<Model>();
  ModelFile& file = model->file;
  std::string text;
  std::filesystem::path config_path;
  // Shapes first (the config alone), then the tensors they call for.
  auto shapes = read_dummy_config(path, file, text, config_path);
  if (!shapes.ok()) return shapes.status();
  ModelConfig c = *shapes;
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  // note: without tensors every config reads as tied; the file decides (Gemma ties by default).
  c.tied_embeddings = json.is_object() && json.value("tie_word_embeddings", c.arch == Architecture::kGemma3);
  SO_ASSIGN_OR_RETURN(const DType dtype,
                      dtype_of_config(json.is_object() ? json.value("torch_dtype", std::string()) : std::string()));

  // note: gpt-oss has GGUF names only (its checkpoints' layout is not one the engine reads).
  // DeepSeek keeps HF names: per-expert tensors keep the random pool small (GGUF's merged experts would need one
  // 7.5 GB block for V3); the k part of each kv_b_proj is transposed into copies at load (1 GB for V3).
  if (c.arch == Architecture::kGptOss) file.format = ModelFormat::kGguf;
  const bool mxfp4_experts = c.arch == Architecture::kGptOss && json.is_object() &&
                             json.value(nlohmann::json::json_pointer("/quantization_config/quant_method"), std::string()) == "mxfp4";
  const std::vector<ExpectedTensor> specs = expected_tensors(c, file.format);
  uint64_t largest = 0, largest_mxfp4 = 0;
  for (const ExpectedTensor& spec : specs) {
    const DType type = dummy_dtype(spec.name, dtype, mxfp4_experts);
    uint64_t& most = type == DType::kMXFP4 ? largest_mxfp4 : largest;
    most = std::max<uint64_t>(most, dtype_row_bytes(type, spec.shape.inner()) * spec.shape.rows());
  }
  // One pool for matrices (aliased at spread offsets), one for vectors (norms near 1), one for
  // MXFP4 experts.
  const uint64_t spread = 64 << 20, vectors = 1 << 20;
  SO_ASSIGN_OR_RETURN(MappedFile pool,
                      MappedFile::anonymous(largest + spread + vectors + largest_mxfp4, "dummy weights"));
  fill_random(pool.writable_data(), largest + spread, dtype, false, seed);
  fill_random(pool.writable_data() + largest + spread, vectors, dtype, true, seed + 1);
  fill_mxfp4(pool.writable_data() + largest + spread + vectors, largest_mxfp4, seed + 2);
  uint64_t at = 0;
  for (const ExpectedTensor& spec : specs) {
    TensorInfo info;
    info.name = spec.name;
    info.dtype = dummy_dtype(spec.name, dtype, mxfp4_experts);
    info.shape = spec.shape;
    info.bytes = dtype_row_bytes(info.dtype, spec.shape.inner()) * spec.shape.rows();
    if (info.dtype == DType::kMXFP4) {
      info.offset = largest + spread + vectors;
    } else if (spec.shape.n_dims == 1) {
      info.offset = largest + spread;
    } else {
      at = (at + 7919 * 4096) % spread;  // different tensors start at different places
      info.offset = at / 64 * 64;
    }
    info.data = pool.data() + info.offset;
    SO_TRY(file.tensors.add(std::move(info)));
  }
  file.files.push_back(std::move(pool));
  model->config = c;
  auto weights = map_model_weights(file, model->config);
  if (!weights.ok()) return weights.status().with_context(str_cat("dummy model from '", config_path.string(), "'"));
  model->weights = std::move(weights).value();
  return model;
}

namespace {
// GPT-2's byte-to-character map: printable bytes stand for themselves, the rest move past 255.
std::string byte_character(int byte) {
  const bool printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
  int code = byte;
  if (!printable) {
    int shifted = 0;
    for (int b = 0; b < byte; ++b) {
      if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) ++shifted;
    }
    code = 256 + shifted;
  }
  std::string utf8;
  if (code < 0x80) {
    utf8 += char(code);
  } else {
    utf8 += char(0xC0 | (code >> 6));
    utf8 += char(0x80 | (code & 0x3F));
  }
  return utf8;
}
}  // namespace

Result<std::unique_ptr<Tokenizer>> dummy_tokenizer(int32_t n_vocab) {
  if (n_vocab < 258) return invalid_argument("a dummy tokenizer needs at least 258 ids, the model has ", n_vocab);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_character(b)] = b;
  for (int32_t id = 258; id < n_vocab; ++id) vocab[str_cat("<dummy_", id, ">")] = id;
  const nlohmann::json tokenizer = {
      {"added_tokens",
       {{{"id", 256}, {"content", "<s>"}, {"special", true}}, {{"id", 257}, {"content", "</s>"}, {"special", true}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  const nlohmann::json config = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", true}};
  return Tokenizer::from_hf_json(tokenizer.dump(), config.dump());
}

Result<std::unique_ptr<Model>> load_model_as(const std::string& path, bool dummy, MapMode mode) {
  return dummy ? load_dummy_model(path) : load_model(path, mode);
}

Result<std::unique_ptr<Tokenizer>> tokenizer_of(const Model& model, bool dummy) {
  return dummy ? dummy_tokenizer(model.config.n_vocab) : Tokenizer::from_model_file(model.file);
}

Result<std::unique_ptr<Tokenizer>> dummy_tokenizer_of_config(const std::string& path) {
  ModelFile file;
  std::string text;
  std::filesystem::path config_path;
  SO_ASSIGN_OR_RETURN(const ModelConfig config, read_dummy_config(path, file, text, config_path));
  return dummy_tokenizer(config.n_vocab);
}

}  // namespace so
