// The tensors of a model file: name, dtype, shape and where the bytes are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "tensor/tensor.h"

namespace so {

struct TensorInfo {
  std::string name;    // as stored in the file: "blk.0.attn_q.weight" or "model.layers.0.self_attn.q_proj.weight"
  DType dtype = DType::kF32;
  Shape shape;         // outer to inner (GGUF's ne[] reversed)
  int file_index = 0;  // which mapped file of the model (shards)
  uint64_t offset = 0; // byte offset of the data inside that file
  uint64_t bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping

  TensorView view() const { return TensorView{dtype, shape, data}; }
};

class TensorDirectory {
 public:
  // Fails on a duplicate name.
  Status add(TensorInfo info);
  const TensorInfo* find(std::string_view name) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t size() const { return tensors_.size(); }
  uint64_t total_bytes() const;

 private:
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace so
