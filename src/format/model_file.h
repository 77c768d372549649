// Opening a model: a GGUF file, or a Hugging Face directory (config.json + safetensors,
// single file or sharded with model.safetensors.index.json).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "base/status.h"
#include "format/metadata.h"
#include "format/tensor_directory.h"

namespace so {

enum class ModelFormat { kGguf, kSafetensors };

struct ModelFile {
  ModelFormat format = ModelFormat::kGguf;
  std::string path;           // the .gguf file or the HF directory
  uint32_t gguf_version = 0;  // GGUF only
  uint64_t gguf_alignment = 0;
  Metadata metadata;          // GGUF key/values, or config.json flattened
  TensorDirectory tensors;
  std::vector<MappedFile> files;  // mappings that TensorInfo::data points into
};

// Dispatches on what `path` is: a directory is read as Hugging Face, a file by its magic.
// mode: map the files, or copy them into private memory (base/mapped_file.h).
Result<ModelFile> open_model_file(const std::string& path, MapMode mode = MapMode::kMapped);

Result<ModelFile> open_gguf(const std::string& path, MapMode mode = MapMode::kMapped);
Result<ModelFile> open_safetensors_directory(const std::string& directory, MapMode mode = MapMode::kMapped);

// Parsers over bytes already in memory (the fuzz targets call these). `bytes` must outlive
// the result; tensor data pointers point into it.
Result<ModelFile> parse_gguf(std::span<const uint8_t> bytes);
// One safetensors file; tensors are added to `directory` with file_index.
Status parse_safetensors(std::span<const uint8_t> bytes, int file_index, TensorDirectory& directory);

}  // namespace so
