// `--load-format dummy`: a model of real shapes with random weights, from a Hugging Face
// config.json alone (configs/ has Mixtral-8x7B/8x22B, Mistral-7B, Qwen3-30B-A3B/235B-A22B and
// gpt-oss-120b). It exists to measure throughput at scales whose weights cannot be had here.
// Every matrix takes the config's torch_dtype, except gpt-oss's experts, which are MXFP4 as
// in the released checkpoints when its quantization_config says so; the tensor names are the
// loader's own. The tensors alias one
// random pool (the largest tensor's size), so the host holds no second copy of the model:
// the offload pipeline packs them into its own slabs as it does for a real file.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace so {

// path: a config.json, or a directory that holds one; any family the loader reads.
Result<std::unique_ptr<Model>> load_dummy_model(const std::string& path, uint64_t seed = 1);

// A byte-level tokenizer over n_vocab ids (bytes first, then <s>, </s>, then fillers), so
// prompts and outputs of a dummy model are still text.
Result<std::unique_ptr<Tokenizer>> dummy_tokenizer(int32_t n_vocab);

// The model at `path`: its file, or dummy weights from its config (--load-format dummy).
Result<std::unique_ptr<Model>> load_model_as(const std::string& path, bool dummy, MapMode mode = MapMode::kMapped);
// The dummy tokenizer of the config at `path`, without making weights.
Result<std::unique_ptr<Tokenizer>> dummy_tokenizer_of_config(const std::string& path);
// Its tokenizer: from the file, or the dummy one.
Result<std::unique_ptr<Tokenizer>> tokenizer_of(const Model& model, bool dummy);

}  // namespace so
