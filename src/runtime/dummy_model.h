// `--load-format dummy`: a model of real shapes with random weights, from a Hugging Face
// config.json alone (configs/ has Mixtral-8x7B/8x22B, Mistral-7B, Qwen3-30B-A3B/235B-A22B and
// gpt-oss-120b). It exists to measure throughput at scales whose weights cannot be had here.
// Every matrix takes the config's torch_dtype, or a GGUF type (--dummy-type Q4_K: the bytes a
// quantized file of the model streams), except gpt-oss's experts, which are MXFP4 as in the
// released checkpoints when its quantization_config says so; the tensor names are the loader's
// own. The tensors alias one random pool (about the largest tensor's size per type), and every
// layer of a kind reads the same bytes: the offload pipeline streams each layer's slab over the
// link every pass as for a real file, from one pinned host slab per kind of layer, so a model
// far larger than host memory (DeepSeek-V3, 1.3 TB in bf16) still streams.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace so {

// How a model's weights are had: from its file, or dummy weights of its config (--load-format
// dummy) in the config's torch_dtype or in dummy_dtype (--dummy-type).
struct LoadFormat {
  bool dummy = false;
  std::optional<DType> dummy_dtype;
};

// path: a config.json, or a directory that holds one; any family the loader reads. weight_dtype:
// the matrices' type instead of the config's torch_dtype.
Result<std::unique_ptr<Model>> load_dummy_model(const std::string& path, std::optional<DType> weight_dtype = {},
                                                uint64_t seed = 1);
// --dummy-type's value (a GGUF type name, any case), or an error that lists the choices.
Result<DType> dummy_weight_dtype(std::string_view name);

// A byte-level tokenizer over n_vocab ids (bytes first, then <s>, </s>, then fillers), so
// prompts and outputs of a dummy model are still text.
Result<std::unique_ptr<Tokenizer>> dummy_tokenizer(int32_t n_vocab);

// The model at `path`: its file, or dummy weights from its config (--load-format dummy).
Result<std::unique_ptr<Model>> load_model_as(const std::string& path, const LoadFormat& format,
                                             MapMode mode = MapMode::kMapped);
// The dummy tokenizer of the config at `path`, without making weights.
Result<std::unique_ptr<Tokenizer>> dummy_tokenizer_of_config(const std::string& path);
// Its tokenizer: from the file, or the dummy one.
Result<std::unique_ptr<Tokenizer>> tokenizer_of(const Model& model, bool dummy);

}  // namespace so
