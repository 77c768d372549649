#include "runtime/dummy_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/mapped_file.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "format/hf_config.h"
#include "model/weights.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace so {

namespace {

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A tensor's name without its layer number ("blk.7.attn_q.weight" -> "blk..attn_q.weight"), hashed (FNV-1a:
// the same on every platform, so dummy weights are).
uint64_t role_hash(std::string_view name) {
  const size_t digits = name.find_first_of("0123456789");
  const size_t end = digits == std::string_view::npos ? digits : name.find_first_not_of("0123456789", digits);
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < name.size(); ++i) {
    if (i >= digits && i < end) continue;
    hash = (hash ^ uint8_t(name[i])) * 1099511628211ull;
  }
  return hash;
}

// fn(begin, end, chunk) over [0, n) in 16 chunks on a pool (the chunk seeds its random stream, so the values do
// not depend on the thread count).
template <typename Fn>
void for_each_chunk(size_t n, Fn fn) {
  constexpr int kChunks = 16;
  ThreadPool pool(int(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned(kChunks))));
  pool.parallel_for(kChunks, [&](int64_t chunk, int) { fn(n * chunk / kChunks, n * (chunk + 1) / kChunks, int(chunk)); });
}

// Random 16-bit floats of magnitude in [2^-9, 2^-4) (weights) or [0.5, 2) (norms), random
// sign; bf16 or f16 bit patterns; f32 values the same way.
void fill_random(uint8_t* data, size_t bytes, DType dtype, bool near_one, uint64_t seed) {
  for_each_chunk(bytes / 8, [=](size_t begin, size_t end, int t) {
    uint64_t state = seed * 0x100000001B3ull + uint64_t(t);
    auto* out = reinterpret_cast<uint64_t*>(data);
    for (size_t i = begin; i < end; ++i) {
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
      out[i] = dtype == DType::kF32 ? (patterns[0] << 16) | (patterns[1] << 48)
                                    : patterns[0] | (patterns[1] << 16) | (patterns[2] << 32) | (patterns[3] << 48);
    }
  });
}

// Where a quantized block keeps its f16 scales (the second, a min or offset, may be absent: -1), and the scale
// that puts a weight near the 16-bit dummies' magnitude (~2^-6) given the codes' typical size.
struct BlockScales {
  DType dtype;
  std::array<int, 2> f16_fields;
  int log2_scale;
};
constexpr BlockScales kBlockScales[] = {
    {DType::kQ8_0, {offsetof(BlockQ8_0, d), -1}, -12},  {DType::kQ4_0, {offsetof(BlockQ4_0, d), -1}, -8},
    {DType::kQ4_1, {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)}, -9},
    {DType::kQ5_0, {offsetof(BlockQ5_0, d), -1}, -9},  {DType::kQ2_K, {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}, -10},
    {DType::kQ3_K, {offsetof(BlockQ3_K, d), -1}, -11}, {DType::kQ4_K, {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}, -14},
    {DType::kQ5_K, {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)}, -15},
    {DType::kQ6_K, {offsetof(BlockQ6_K, d), -1}, -16},
};

const BlockScales* block_scales(DType dtype) {
  for (const BlockScales& scales : kBlockScales) {
    if (scales.dtype == dtype) return &scales;
  }
  return nullptr;
}

// Random blocks of a quantized type: any codes, scales near the table's (no NaN, infinity or huge values).
void fill_quantized(uint8_t* data, size_t bytes, const BlockScales& scales, uint64_t seed) {
  const size_t block = size_t(dtype_info(scales.dtype).block_bytes);
  for_each_chunk(bytes / block, [=](size_t begin, size_t end, int t) {
    uint64_t state = seed * 0x100000001B3ull + uint64_t(t);
    for (size_t b = begin; b < end; ++b) {
      uint8_t* out = data + b * block;
      uint64_t r = 0;
      for (size_t i = 0; i < block; i += 8) {
        r = splitmix(state);
        std::memcpy(out + i, &r, std::min<size_t>(8, block - i));
      }
      const float scale = std::ldexp(1.0f + float(r >> 56) / 256.0f, scales.log2_scale);
      for (int field = 0; field < 2; ++field) {
        if (scales.f16_fields[field] < 0) continue;
        const uint16_t half = fp32_to_fp16(field == 1 && (r & 1) ? -scale : scale);
        std::memcpy(out + scales.f16_fields[field], &half, 2);
      }
    }
  });
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

// The dtype a tensor gets: gpt-oss's experts MXFP4 when its quantization_config says so (as released); beside a
// quantized type, what llama.cpp's quantizer leaves unquantized stays F32 (vectors, biases, MoE routers: GGUF's
// ffn_gate_inp, Hugging Face's *.gate.weight), and a matrix whose rows are not whole blocks of the type takes Q8_0,
// else F16, as that quantizer falls back.
DType dummy_dtype(const ExpectedTensor& spec, DType dtype, bool mxfp4_experts) {
  const std::string& name = spec.name;
  if (mxfp4_experts && name.find("_exps.weight") != std::string::npos) return DType::kMXFP4;
  const DTypeInfo& info = dtype_info(dtype);
  if (!info.is_quantized) return dtype;
  const bool router = name.find("ffn_gate_inp") != std::string::npos || name.ends_with(".gate.weight");
  if (spec.shape.n_dims == 1 || !name.ends_with("weight") || router) return DType::kF32;
  if (spec.shape.inner() % info.block_elements == 0) return dtype;
  return spec.shape.inner() % dtype_info(DType::kQ8_0).block_elements == 0 ? DType::kQ8_0 : DType::kF16;
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

Result<std::unique_ptr<Model>> load_dummy_model(const std::string& path, std::optional<DType> weight_dtype,
                                                uint64_t seed) {
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
  SO_ASSIGN_OR_RETURN(const DType config_dtype,
                      dtype_of_config(json.is_object() ? json.value("torch_dtype", std::string()) : std::string()));
  const DType dtype = weight_dtype.value_or(config_dtype);

  // note: gpt-oss has GGUF names only (its checkpoints' layout is not one the engine reads).
  // DeepSeek keeps HF names: per-expert tensors keep the random pool small (GGUF's merged experts would need one
  // 7.5 GB block for V3); the k part of each kv_b_proj is transposed into copies at load (1 GB for V3).
  if (c.arch == Architecture::kGptOss) file.format = ModelFormat::kGguf;
  const bool mxfp4_experts = c.arch == Architecture::kGptOss && json.is_object() &&
                             json.value(nlohmann::json::json_pointer("/quantization_config/quant_method"), std::string()) == "mxfp4";
  const std::vector<ExpectedTensor> specs = expected_tensors(c, file.format);
  constexpr uint64_t spread = 64 << 20;
  // One region of random values per dtype, vectors (norms near 1) apart; a region's tensors alias it, matrices at
  // offsets spread by their role in the layer: tensors of a layer differ, and every layer of a kind reads the same
  // bytes, so the layer streamer keeps one pinned host slab for them all (planner/placement.h, twins).
  struct Region {
    DType dtype;
    bool vector;
    uint64_t largest = 0, offset = 0;
    uint64_t bytes() const { return largest + (vector ? 0 : spread); }
  };
  std::vector<Region> regions;
  auto region_of = [&regions](DType type, bool vector) -> Region& {
    for (Region& region : regions) {
      if (region.dtype == type && region.vector == vector) return region;
    }
    return regions.emplace_back(Region{type, vector});
  };
  for (const ExpectedTensor& spec : specs) {
    const DType type = dummy_dtype(spec, dtype, mxfp4_experts);
    Region& region = region_of(type, spec.shape.n_dims == 1);
    region.largest = std::max<uint64_t>(region.largest, dtype_row_bytes(type, spec.shape.inner()) * spec.shape.rows());
  }
  uint64_t pool_bytes = 0;
  for (Region& region : regions) {
    region.offset = pool_bytes;
    pool_bytes += (region.bytes() + 63) / 64 * 64;
  }
  SO_ASSIGN_OR_RETURN(MappedFile pool, MappedFile::anonymous(pool_bytes, "dummy weights"));
  for (size_t i = 0; i < regions.size(); ++i) {
    const Region& region = regions[i];
    uint8_t* data = pool.writable_data() + region.offset;
    const uint64_t bytes = region.bytes(), region_seed = seed + 3 * i;
    if (region.dtype == DType::kMXFP4) {
      fill_mxfp4(data, bytes, region_seed);
    } else if (const BlockScales* scales = block_scales(region.dtype)) {
      fill_quantized(data, bytes, *scales, region_seed);
    } else {
      fill_random(data, bytes, region.dtype, region.vector, region_seed);
    }
  }
  for (const ExpectedTensor& spec : specs) {
    TensorInfo info;
    info.name = spec.name;
    info.dtype = dummy_dtype(spec, dtype, mxfp4_experts);
    info.shape = spec.shape;
    info.bytes = dtype_row_bytes(info.dtype, spec.shape.inner()) * spec.shape.rows();
    const Region& region = region_of(info.dtype, spec.shape.n_dims == 1);
    info.offset = region.offset;
    if (!region.vector) {  // on the region's block grid, 64-byte aligned
      const uint64_t grain = 64 * uint64_t(dtype_info(info.dtype).block_bytes);
      info.offset += role_hash(spec.name) % (spread / grain) * grain;
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

Result<DType> dummy_weight_dtype(std::string_view name) {
  const std::optional<DType> dtype = dtype_from_name(name);
  if (!dtype || !dtype_info(*dtype).weight_supported || *dtype == DType::kMXFP4) {
    return invalid_argument("--dummy-type ", quote_for_message(name), " is not a type dummy weights can take; expected ",
                            "one of F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q5_0, Q4_K, Q4_1, Q4_0, Q3_K, Q2_K (gpt-oss ",
                            "configs keep MXFP4 experts when their quantization_config says so)");
  }
  return *dtype;
}

Result<std::unique_ptr<Model>> load_model_as(const std::string& path, const LoadFormat& format, MapMode mode) {
  return format.dummy ? load_dummy_model(path, format.dummy_dtype) : load_model(path, mode);
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
