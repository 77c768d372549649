// libFuzzer target: parse_gguf over arbitrary bytes returns an error or a model whose every
// tensor lies inside the input; it never crashes or reads outside the input.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "format/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  so::Result<so::ModelFile> model = so::parse_gguf({data, size});
  if (!model.ok()) {
    SO_CHECK(!model.status().message().empty());
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const so::TensorInfo& tensor : model->tensors.tensors()) {
    SO_CHECK(tensor.bytes > 0 && tensor.bytes == static_cast<uint64_t>(tensor.view().bytes()), tensor.name);
    SO_CHECK(tensor.data >= data && tensor.offset + tensor.bytes <= size, tensor.name);
    // note: libFuzzer hands over an exactly sized heap copy, so ASan reports a bad pointer here.
    sink = sink ^ tensor.data[0] ^ tensor.data[tensor.bytes - 1];
  }
  for (const auto& [key, value] : model->metadata.entries()) (void)value.summary();
  return 0;
}
