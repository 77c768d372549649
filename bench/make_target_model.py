"""Writes a GGUF whose quantized tensors are dequantized to F16 (or F32): the same model at
3-6x the bytes, as a bigger target for a quantized draft of itself.

The offload benchmarks need a target much larger than the device budget and a draft that
shares its vocabulary. No larger model of SmolLM2's family is at hand here, so the target is
the default model at full precision and the draft is the quantized original: the same
network, so acceptance is high (like a quantized self-draft), and the target streams 2.8x
(F16) or 5.6x (F32) the draft's bytes.

    python bench/make_target_model.py SOURCE.gguf OUT.gguf [f16|f32]
"""
import sys

import gguf
import numpy as np


def main(source: str, out: str, dtype: str) -> None:
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(out, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # the writer adds these itself
        if name == "general.file_type":
            continue  # no longer one quantization
        value_type = field.types[0]
        if value_type == gguf.GGUFValueType.ARRAY:
            writer.add_array(name, field.contents())
        else:
            writer.add_key_value(name, field.contents(), value_type)
    target = np.float16 if dtype == "f16" else np.float32
    for tensor in reader.tensors:
        kind = gguf.GGMLQuantizationType(tensor.tensor_type)
        floats = kind in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        values = np.asarray(tensor.data) if floats else gguf.quants.dequantize(np.asarray(tensor.data), kind)
        if values.ndim > 1:  # matrices; norms stay F32
            values = values.astype(target)
        writer.add_tensor(tensor.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] not in ("f16", "f32")):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "f16")
