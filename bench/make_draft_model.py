"""Writes a draft model for a GGUF target: the target's first N layers, final norm and
LM head as their own GGUF file (same vocabulary and tokenizer, own weights in memory).

Where no smaller model of the target's family is at hand (SmolLM2-135M is the family's
smallest), this gives `--draft-model` a real, separate file to load.

    python bench/make_draft_model.py TARGET.gguf N OUT.gguf
"""
import sys

import gguf
import numpy as np


def main(target: str, n_layers: int, out: str) -> None:
    reader = gguf.GGUFReader(target)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(out, arch)
    block_count_key = f"{arch}.block_count"
    if n_layers < 1 or n_layers >= reader.fields[block_count_key].contents():
        sys.exit(f"N must be 1 to {reader.fields[block_count_key].contents() - 1}, got {n_layers}")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # the writer adds these itself
        value_type = field.types[0]
        if name == block_count_key:
            writer.add_uint32(name, n_layers)
        elif value_type == gguf.GGUFValueType.ARRAY:
            writer.add_array(name, field.contents())
        else:
            writer.add_key_value(name, field.contents(), value_type)
    for tensor in reader.tensors:
        if tensor.name.startswith("blk.") and int(tensor.name.split(".")[1]) >= n_layers:
            continue
        # note: quantized tensors come as raw bytes; the writer derives their shape from the type.
        writer.add_tensor(tensor.name, np.asarray(tensor.data), raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
