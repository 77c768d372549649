// A loaded model: the mapped file(s), the canonical config and the weight views.
#pragma once

#include <memory>
#include <string>

#include "format/model_file.h"
#include "model/config.h"
#include "model/weights.h"

namespace so {

struct Model {
  ModelFile file;
  ModelConfig config;
  ModelWeights weights;
};

// path: a GGUF file or a Hugging Face directory (config.json + safetensors).
Result<std::unique_ptr<Model>> load_model(const std::string& path, MapMode mode = MapMode::kMapped);

}  // namespace so
