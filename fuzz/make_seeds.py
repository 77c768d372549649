"""Writes small valid model files as seed corpora for the fuzz targets.

    make_seeds.py <out-dir>    -> <out-dir>/gguf_fuzz/*.gguf, <out-dir>/safetensors_fuzz/*.safetensors

GGUF seeds come from the gguf package's writer (an implementation independent of ours);
safetensors seeds are written by hand (the format is a length, a JSON header and bytes).
Every file stays a few KB so libFuzzer mutates headers rather than tensor data.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf


def write_gguf(path: Path, alignment: int | None, tensors: dict, extra_metadata: bool) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_uint32("llama.block_count", 1)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    if extra_metadata:
        writer.add_uint8("test.u8", 7)
        writer.add_int16("test.i16", -3)
        writer.add_int64("test.i64", -1 << 40)
        writer.add_uint64("test.u64", 1 << 63)
        writer.add_float64("test.f64", 0.25)
        writer.add_bool("test.bool", True)
        writer.add_string("tokenizer.ggml.model", "gpt2")
        writer.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b", "ab"])
        writer.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0])
        writer.add_array("test.nested", [[1, 2], [3]])
    for name, (array, raw_dtype) in tensors.items():
        writer.add_tensor(name, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_safetensors(path: Path, tensors: dict, metadata: dict | None) -> None:
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def main() -> None:
    out = Path(sys.argv[1])
    (out / "gguf_fuzz").mkdir(parents=True, exist_ok=True)
    (out / "safetensors_fuzz").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Q8_0 = gguf.GGMLQuantizationType.Q8_0
    Q4_0 = gguf.GGMLQuantizationType.Q4_0
    weight = rng.standard_normal((4, 64), dtype=np.float32)

    write_gguf(out / "gguf_fuzz" / "metadata_only.gguf", None, {}, True)
    write_gguf(out / "gguf_fuzz" / "f32_f16.gguf", None,
               {"norm.weight": (np.ones(8, dtype=np.float32), None),
                "tok.weight": (rng.standard_normal((3, 4)).astype(np.float16), None)}, False)
    write_gguf(out / "gguf_fuzz" / "quantized_align64.gguf", 64,
               {"q8.weight": (gguf.quants.quantize(weight, Q8_0), Q8_0),
                "q4.weight": (gguf.quants.quantize(weight, Q4_0), Q4_0),
                "norm.weight": (np.ones(64, dtype=np.float32), None)}, True)

    write_safetensors(out / "safetensors_fuzz" / "three_dtypes.safetensors",
                      {"a.weight": ("F32", [2, 3], np.arange(6, dtype=np.float32).tobytes()),
                       "b.weight": ("F16", [4], np.ones(4, dtype=np.float16).tobytes()),
                       "c.weight": ("BF16", [2, 1, 2], bytes(8))},
                      {"format": "pt"})
    write_safetensors(out / "safetensors_fuzz" / "scalar.safetensors", {"scale": ("F32", [], bytes(4))}, None)
    write_safetensors(out / "safetensors_fuzz" / "empty.safetensors", {}, {})


if __name__ == "__main__":
    main()
