// libFuzzer target: parse_safetensors over arbitrary bytes returns an error or tensors that
// all lie inside the input; it never crashes or reads outside the input.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "format/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  so::TensorDirectory directory;
  so::Status status = so::parse_safetensors({data, size}, 0, directory);
  if (!status.ok()) {
    SO_CHECK(!status.message().empty());
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const so::TensorInfo& tensor : directory.tensors()) {
    SO_CHECK(tensor.bytes > 0 && tensor.bytes == static_cast<uint64_t>(tensor.view().bytes()), tensor.name);
    SO_CHECK(tensor.data >= data && tensor.offset + tensor.bytes <= size, tensor.name);
    // note: libFuzzer hands over an exactly sized heap copy, so ASan reports a bad pointer here.
    sink = sink ^ tensor.data[0] ^ tensor.data[tensor.bytes - 1];
  }
  return 0;
}
