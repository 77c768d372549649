"""Checks that the generated test models are what the parity tests take them to be, before any engine exists.

- llama.cpp loads every architecture x dtype and produces logits that look like a model's;
- an independent f32 NumPy forward pass (numpy_forward) agrees with llama.cpp on every one of them, which pins
  down what the files mean (rope layout, tensor roles, expert order, biases, metadata);
- the safetensors twins hold the same model as their GGUF twins, and load with the safetensors library;
- quantized blocks have the intended statistics; generation is deterministic.

Bounds for NumPy vs llama.cpp (f32 KV cache, plain CPU kernels) are the worst measured over 32 models x 20
sequences (dev/parity_report.py --seeds 4 prints the table) plus margin. F32 is tight: llama.cpp is exact there, so even a
small misread such as a wrong rms epsilon shows. The other dtypes are bounded by llama.cpp's own rounding of
activations (f16/bf16 before F16/BF16 matmuls, Q8 quantization before quantized ones).
"""

from __future__ import annotations

import hashlib
import json

import gguf
import numpy as np
import pytest

import llama_reference
import model_factory
import numpy_forward
import parity

SPECS = model_factory.parity_specs()
TWIN_SPECS = model_factory.twin_specs()
SHAPES = [(18, 12), (7, 1), (25, 20), (11, 11), (30, 3)]  # (length, prefill) per sequence

NUMPY_VS_LLAMA_MAX_ERROR = {"F32": 2e-5, "F16": 5e-3, "BF16": 4e-2,
                            "Q8_0": 0.12, "Q4_0": 0.12, "Q4_1": 0.12, "Q5_0": 0.12, "MXFP4": 0.12, "Q4_K": 0.14, "Q5_K": 0.14, "Q6_K": 0.16,
                            "Q2_K": 0.16, "Q3_K": 0.16}
# llama.cpp computes GELU through an f16 lookup table (GGML_GELU_FP16): on the F32 gemma3 model NumPy's exact GELU
# is 8e-4 from it, 1.9e-4 when NumPy rounds GELU's input and output to f16 the same way.
GELU_TABLE_ERROR = 2e-3
HF_VS_GGUF_MAX_ERROR = 1e-5  # same weights, f32 math both ways: only summation order differs
MAX_FILE_BYTES = 10 * 2**20
# DeepSeek keeps the released latent width (a 576-wide KV head, 512 of it latent) and per-head k_b/v_b: 39 MB in F32.
MAX_DEEPSEEK_FILE_BYTES = 40 * 2**20


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gguf_metadata_and_tensor_types(spec):
    """The file carries the spec's hyperparameters and stores each tensor in the intended dtype."""
    path = model_factory.gguf_path(spec)
    assert path.stat().st_size < (MAX_DEEPSEEK_FILE_BYTES if spec.arch == "deepseek2" else MAX_FILE_BYTES)
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    arch = spec.gguf_arch
    assert field("general.architecture") == arch
    assert field(f"{arch}.context_length") >= 512
    assert field(f"{arch}.attention.head_count_kv") < field(f"{arch}.attention.head_count")  # GQA
    assert field(f"{arch}.rope.freq_base") == pytest.approx(spec.rope_theta) and spec.rope_theta != 10000.0
    assert field(f"{arch}.attention.layer_norm_rms_epsilon") == pytest.approx(spec.rms_eps)
    if spec.arch == "mixtral":
        assert 4 <= field("llama.expert_count") <= 8 and field("llama.expert_used_count") == 2
    assert len(field("tokenizer.ggml.tokens")) == spec.vocab_size
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert ("output.weight" in types) == (not spec.tied)
    for name, qtype in types.items():
        small = name.endswith("_norm.weight") or name.endswith(".bias") or "ffn_gate_inp" in name or "sinks" in name
        dtype = spec.expert_dtype if spec.expert_dtype and "_exps.weight" in name else spec.dtype
        expected = gguf.GGMLQuantizationType.F32 if small else gguf.GGMLQuantizationType[dtype]
        assert qtype == expected, f"{name}: {qtype.name}, expected {expected.name}"
    if spec.arch == "qwen2":
        assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= set(types)
    if spec.arch == "gptoss":
        assert {"blk.0.attn_sinks.weight", "blk.0.attn_output.bias", "blk.1.ffn_down_exps.bias"} <= set(types)
        assert field("gpt-oss.attention.sliding_window") == spec.sliding_window
    if spec.arch == "deepseek2":  # absorbed-MLA layout: one latent KV head, k_b/v_b split per head
        d = model_factory.DEEPSEEK
        assert field("deepseek2.attention.head_count_kv") == 1
        assert field("deepseek2.attention.key_length") == d["kv_lora"] + d["rope"]
        assert field("deepseek2.attention.key_length_mla") == d["nope"] + d["rope"]
        shapes = {t.name: list(t.shape) for t in reader.tensors}
        assert shapes["blk.0.attn_k_b.weight"] == [d["nope"], d["kv_lora"], spec.n_heads]  # ggml order
        assert "blk.0.ffn_gate.weight" in shapes and "blk.1.ffn_gate_shexp.weight" in shapes
        assert field("deepseek2.expert_group_count") == d["groups"] and field("deepseek2.expert_gating_func") == 2
        assert "blk.1.exp_probs_b.bias" in shapes and "blk.0.exp_probs_b.bias" not in shapes
    if spec.arch == "mixtral":
        shape = next(t.shape for t in reader.tensors if t.name == "blk.0.ffn_gate_exps.weight")
        assert list(shape) == [spec.dim, spec.ffn_dim, spec.n_experts]  # ggml order: (cols, rows, experts)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_llama_cpp_logits_look_like_a_model(spec):
    """Finite, neither saturated nor flat, and the prediction depends on the input."""
    tokens = parity.draw_tokens(spec, 32, seed=7)
    logits = llama_reference.logits(model_factory.gguf_path(spec), tokens)
    assert np.isfinite(logits).all()
    assert 2.0 <= logits.std(axis=1).mean() <= 8.0, logits.std(axis=1).mean()
    assert np.abs(logits).max() < 60.0
    argmax = logits.argmax(axis=1)
    # note: a broken model predicts one to three tokens; random healthy ones vary 17-30 of 32 (qwen2 Q5_0: 17)
    assert len(set(argmax.tolist())) >= 0.5 * len(tokens), f"argmax barely varies: {argmax}"
    assert np.mean(argmax == np.array(tokens)) <= 0.5, "the model mostly repeats its input token"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_numpy_forward_matches_llama_cpp(spec):
    """The independent NumPy pass and llama.cpp read the file the same way (prefill then decode steps)."""
    model = model_factory.gguf_path(spec)
    weights = parity.numpy_weights(spec)
    comparisons = []
    for i, sequence in enumerate(parity.ragged_batch(spec, SHAPES, seed=3)):
        ref = llama_reference.logits(model, sequence.tokens, sequence.prefill)
        ours = numpy_forward.logits(weights, list(sequence.tokens), sequence.prefill)
        comparisons.append(parity.compare(f"{spec.name} sequence {i}", ours, ref))
    merged = parity.merge(f"{spec.name} numpy vs llama.cpp", comparisons)
    print(merged.describe())
    bound = NUMPY_VS_LLAMA_MAX_ERROR[spec.tolerance_dtype]
    if spec.arch == "gemma3":
        bound = max(bound, GELU_TABLE_ERROR)
    assert merged.errors.max() <= bound, merged.describe()


@pytest.mark.parametrize("n_shards", [1, 2])
@pytest.mark.parametrize("spec", TWIN_SPECS, ids=lambda s: s.name)
def test_hf_twin_is_the_same_model(spec, n_shards):
    """HF layout (rotate_half rope, HF names, per-expert tensors) gives the GGUF twin's logits."""
    directory = model_factory.hf_path(spec, n_shards)
    config = json.loads((directory / "config.json").read_text())
    assert config["tie_word_embeddings"] == spec.tied
    assert config["num_key_value_heads"] == spec.n_kv_heads and config["rope_theta"] == spec.rope_theta
    assert config["rms_norm_eps"] == spec.rms_eps and config["vocab_size"] == spec.vocab_size
    if spec.arch == "mixtral":
        assert (config["num_local_experts"], config["num_experts_per_tok"]) == (spec.n_experts, 2)
    tokens = list(parity.draw_tokens(spec, 20, seed=5))
    hf = numpy_forward.logits(numpy_forward.load_hf(directory), tokens, prefill=14)
    gg = numpy_forward.logits(parity.numpy_weights(spec), tokens, prefill=14)
    assert parity.normalized_max_error(hf, gg).max() <= HF_VS_GGUF_MAX_ERROR


@pytest.mark.parametrize("spec", TWIN_SPECS, ids=lambda s: s.name)
def test_hf_twin_files_load_with_safetensors(spec):
    """Both layouts open with the safetensors library; the shard index covers every tensor exactly once."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    single = model_factory.hf_path(spec, 1)
    sharded = model_factory.hf_path(spec, 2)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shard_files = sorted(set(index["weight_map"].values()))
    assert len(shard_files) == 2
    names_by_shard = {}
    for file in shard_files:
        with safe_open(str(sharded / file), framework="numpy") as f:
            names_by_shard[file] = set(f.keys())
            dtypes = {f.get_slice(name).get_dtype() for name in f.keys()}
        # one dtype throughout, norms included (as HF checkpoints); gpt-oss's MXFP4 experts as U8 blocks and scales
        assert dtypes == {spec.dtype} | ({"U8"} if spec.arch == "gptoss" else set()), dtypes
    assert {n: f for f, names in names_by_shard.items() for n in names} == index["weight_map"]
    with safe_open(str(single / "model.safetensors"), framework="numpy") as f:
        assert set(f.keys()) == set(index["weight_map"])
    names = set(index["weight_map"])
    assert ("lm_head.weight" in names) == (not spec.tied)
    if spec.dtype != "BF16":  # numpy has no bfloat16, so safetensors.numpy cannot materialize those
        arrays = load_file(str(single / "model.safetensors"))
        assert arrays["model.embed_tokens.weight"].shape == (spec.vocab_size, spec.dim)
        if spec.arch == "deepseek2":  # kv_b_proj whole, as DeepSeek's checkpoints keep it
            d = model_factory.DEEPSEEK
            assert arrays["model.layers.0.self_attn.kv_b_proj.weight"].shape == (
                spec.n_heads * (d["nope"] + d["v"]), d["kv_lora"])
        else:
            assert arrays["model.layers.0.self_attn.k_proj.weight"].shape == (spec.n_kv_heads * spec.head_dim,
                                                                              spec.dim)


@pytest.mark.parametrize("dtype", model_factory.DTYPES + model_factory.LOW_BIT_DTYPES)
def test_quantized_weights_have_intended_statistics(dtype):
    """Dequantized matmul weights have about the requested std and zero mean; for K-quants (blocks written by
    hand) each 32-value Q4_K sub-block uses at most 16 levels and Q6_K scales come with both signs."""
    tensors = model_factory.build_hf_tensors(model_factory.make_spec("llama", dtype))
    weight = tensors["model.layers.0.mlp.gate_proj.weight"]
    values = weight.dequantized()
    target = model_factory.ModelSpec("llama", dtype).dim ** -0.5
    assert values.shape == (512, 256)
    assert 0.7 * target <= values.std() <= 1.4 * target, (values.std(), target)
    assert abs(values.mean()) <= 0.05 * target
    if dtype == "Q4_K":
        levels = [len(np.unique(block)) for block in values.reshape(-1, 32)[:200]]
        assert max(levels) <= 16 and min(levels) >= 8
    if dtype == "Q6_K":
        scales = weight.data.reshape(-1, 210)[:, 192:208].view(np.int8)
        assert (scales < 0).any() and (scales > 0).any()
    if dtype in ("Q2_K", "Q3_K"):  # at most 4 (Q2_K) or 8 (Q3_K) levels in each 16-value sub-block
        levels = [len(np.unique(block)) for block in values.reshape(-1, 16)[:200]]
        assert max(levels) <= (4 if dtype == "Q2_K" else 8) and min(levels) >= 2


def test_rope_permutation_round_trips():
    rows = np.arange(4 * 64 * 3, dtype=np.float32).reshape(4 * 64, 3)
    permuted = model_factory.rope_rows_hf_to_gguf(rows, 4)
    assert not np.array_equal(permuted, rows)
    assert np.array_equal(model_factory.rope_rows_gguf_to_hf(permuted, 4), rows)
    # GGUF row 2i+j of head h is HF row j*32 + i of that head
    assert np.array_equal(permuted[64 + 2 * 5 + 1], rows[64 + 32 + 5])


def test_generation_is_deterministic(tmp_path):
    spec = model_factory.make_spec("mixtral", "Q4_K")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    first = digest(model_factory.write_gguf(spec, tmp_path / "a.gguf"))
    assert first == digest(model_factory.write_gguf(spec, tmp_path / "b.gguf"))
    other = model_factory.make_spec("mixtral", "Q4_K", seed=1)
    assert first != digest(model_factory.write_gguf(other, tmp_path / "c.gguf"))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tokenizer_twins_agree(arch):
    """The GGUF vocabulary (read by llama.cpp) and tokenizer.json (read by HF tokenizers) tokenize alike."""
    from tokenizers import Tokenizer

    spec = model_factory.make_spec(arch, "F32")
    hf = Tokenizer.from_file(str(model_factory.hf_path(spec) / "tokenizer.json"))
    texts = ["The engine streams the weights of a large model.", "def fibonacci(n): return n",
             "Numbers 1024 and 3.14159, café!", "<|im_start|>user\nhello<|im_end|>"]
    for text in texts:
        ids = llama_reference.tokenize(model_factory.gguf_path(spec), text)
        assert ids == hf.encode(text).ids, text
        assert len(ids) < len(text.encode("utf-8")), "merges should shorten common text"
        assert llama_reference.detokenize(model_factory.gguf_path(spec), ids) == text
