#include "format/tensor_directory.h"

namespace so {

Status TensorDirectory::add(TensorInfo info) {
  if (index_.count(info.name)) return format_error("tensor ", quote_for_message(info.name), " appears twice");
  index_.emplace(info.name, tensors_.size());
  tensors_.push_back(std::move(info));
  return Status::Ok();
}

const TensorInfo* TensorDirectory::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t TensorDirectory::total_bytes() const {
  uint64_t total = 0;
  for (const auto& t : tensors_) total += t.bytes;
  return total;
}

}  // namespace so
