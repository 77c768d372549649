"""Small random models, written deterministically from a seed, for parity tests.

Why: the engine must agree with llama.cpp for every architecture and weight dtype it supports, and real
checkpoints are far too large for a CI machine with two cores. A random model of the right *layout* (same tensor
names, shapes, metadata, quantization blocks) exercises exactly the code paths a real one does, in milliseconds.

One `ModelSpec` names one model. `write_gguf` writes it as a GGUF file llama.cpp loads; `write_hf` writes the
same model as a Hugging Face directory (config.json + tokenizer.json + one or two safetensors shards). Both are
derived from one set of "stored" tensors in Hugging Face layout, so the twins hold bit-identical weights:

    HF layout, values as stored  --(rename, stack experts, permute Q/K rows for llama rope)-->  GGUF tensors

Weight dtypes: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, MXFP4, Q4_K, Q5_K, Q6_K for every matmul weight and token_embd; norms, biases
and the MoE router stay F32 (as llama.cpp's quantizer leaves them). Values of those F32 tensors are rounded to the
bf16 grid so that the HF twin can hold them in its own dtype without loss. The gguf package cannot quantize
K-quants, so Q4_K/Q5_K/Q6_K tensors are written as valid blocks with random quant bits and chosen scales;
`gguf.quants.dequantize` is the source of truth for what they mean.

Run `python model_factory.py OUT_DIR` to write every spec (GGUF, plus HF twins where they exist) for manual use.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
import safetensors

Q = gguf.GGMLQuantizationType

ARCHS = ("llama", "qwen2", "mixtral", "qwen3", "qwen3moe", "gemma3", "gptoss", "deepseek2")
MOE_ARCHS = ("mixtral", "qwen3moe", "gptoss", "deepseek2")
QK_NORM_ARCHS = ("qwen3", "qwen3moe", "gemma3")
DTYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "Q5_0", "MXFP4", "Q5_K")
FLOAT_DTYPES = ("F32", "F16", "BF16")  # the dtypes with a safetensors twin
# The 2- and 3-bit K-quants (Q2_K, Q3_K_M files of the largest models), on a few families only: the kernels do
# not depend on the family, and every dtype x family pair costs CI time. (deepseek2 is left out: at 3 bits its
# grouped routing meets near ties that activation rounding flips, which the margin filter does not catch.)
LOW_BIT_DTYPES = ("Q2_K", "Q3_K")
LOW_BIT_ARCHS = ("llama", "qwen3moe", "gptoss")
K_QUANT_BLOCK = 256  # row lengths of K-quant tensors must be multiples of this

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2 (as in SmolLM2)
BOS_ID, EOS_ID, PAD_ID = 1, 2, 0

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that determines one generated model. Equal specs give byte-identical files."""

    # "llama" (SmolLM2/Llama/Mistral layout), "qwen2" (plus Q/K/V biases), "mixtral" (llama + MoE), "qwen3"
    # (per-head q/k norms), "qwen3moe" (qwen3 + MoE), "gemma3" (sandwich norms, GELU, sliding layers), "gptoss"
    # (gpt-oss: biases, attention sinks, alternate sliding layers, clamped-SwiGLU MoE; GGUF only), "deepseek2"
    # (DeepSeek-V3's layout at small size: latent attention, a dense first layer, shared + grouped sigmoid experts;
    # DEEPSEEK holds its fixed sizes)
    arch: str
    dtype: str  # weight dtype of matmul weights and token_embd, one of DTYPES
    tied: bool = True  # True: no separate output matrix, logits use token_embd
    seed: int = 0
    n_layers: int = 2
    dim: int = 256  # multiple of 256 so every row length suits K-quants
    n_heads: int = 4
    n_kv_heads: int = 2  # GQA: two query heads share one KV head
    ffn_dim: int = 512
    vocab_size: int = 640
    n_experts: int = 0  # > 0 only for the MoE archs
    n_experts_used: int = 0
    key_length: int = 0  # head size when it is not dim / n_heads (Qwen3, Gemma 3)
    sliding_window: int = 0  # gemma3: keys a sliding layer sees (five of every six layers slide)
    rope_theta: float = 50000.0
    rms_eps: float = 1e-5
    context_length: int = 1024
    # RoPE scaling as the families use it: "" (none), "linear", "yarn", "llama3" (rope_freqs.weight in GGUF).
    rope_scaling: str = ""
    rope_factor: float = 1.0
    rope_orig_context: int = 0  # training context before scaling (YaRN, llama3)
    lite: bool = False  # deepseek2 as V2-Lite lays it out: one q projection, softmax routing, no groups or bias
    expert_dtype: str = ""  # the experts' dtype when it is not `dtype` (gpt-oss as released: MXFP4 experts)

    def __post_init__(self):
        assert self.arch in ARCHS, self.arch
        assert self.dtype in DTYPES + LOW_BIT_DTYPES, self.dtype
        assert self.dim % self.n_heads == 0 and self.n_heads % self.n_kv_heads == 0
        assert self.dim % K_QUANT_BLOCK == 0 and self.ffn_dim % K_QUANT_BLOCK == 0
        assert (self.n_experts > 0) == (self.arch in MOE_ARCHS)
        assert self.rope_scaling in ("", "linear", "yarn", "llama3"), self.rope_scaling

    @property
    def head_dim(self) -> int:
        return self.key_length or self.dim // self.n_heads

    @property
    def tolerance_dtype(self) -> str:
        """The dtype whose error bounds apply: the experts' when they are coarser (gpt-oss as released)."""
        return self.expert_dtype or self.dtype

    @property
    def n_dense_layers(self) -> int:
        return DEEPSEEK["n_dense"] if self.arch == "deepseek2" else 0

    @property
    def gguf_arch(self) -> str:
        """Mixtral is GGUF architecture "llama" with expert counts in the metadata."""
        return {"mixtral": "llama", "gptoss": "gpt-oss"}.get(self.arch, self.arch)

    @property
    def interleaved_rope(self) -> bool:
        """GGUF llama/mixtral rotate adjacent pairs (the converter permutes Q/K rows); the rest rotate halves."""
        return self.arch in ("llama", "mixtral")

    def sliding_layers(self) -> list[bool]:
        """The layer patterns as llama.cpp has them: Gemma 3's every sixth layer is global, gpt-oss's every second."""
        period = 2 if self.arch == "gptoss" else 6
        return [self.sliding_window > 0 and i % period < period - 1 for i in range(self.n_layers)]

    @property
    def name(self) -> str:
        tie = "tied" if self.tied else "untied"
        scaling = f"-rope-{self.rope_scaling}{self.rope_factor:g}" if self.rope_scaling else ""
        experts = f"-experts-{self.expert_dtype}" if self.expert_dtype else ""
        return f"{self.arch}{'-lite' if self.lite else ''}-{tie}-{self.dtype}{experts}{scaling}-s{self.seed}"

    def llama3_freq_factors(self) -> np.ndarray:
        """Llama 3.1's per-frequency divisors (what its converter stores in rope_freqs.weight): wavelengths above
        orig/low_freq_factor are slowed by the factor, below orig/high_freq_factor kept, smooth in between."""
        low, high = 1.0, 4.0
        freqs = self.rope_theta ** (-np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim)
        wavelength = 2 * np.pi / freqs
        smooth = (self.rope_orig_context / wavelength - low) / (high - low)
        divisor = 1.0 / ((1 - smooth) / self.rope_factor + smooth)
        divisor = np.where(wavelength < self.rope_orig_context / high, 1.0, divisor)
        divisor = np.where(wavelength > self.rope_orig_context / low, self.rope_factor, divisor)
        return divisor.astype(np.float32)

    @property
    def has_hf_twin(self) -> bool:
        # note: gpt-oss checkpoints keep their experts as MXFP4 blocks (gate/up interleaved): twins need MXFP4 experts.
        return self.dtype in FLOAT_DTYPES and (self.arch != "gptoss" or self.expert_dtype == "MXFP4")


# DeepSeek-V3's structure at small size: q through a bottleneck, a 512-wide latent KV plus 64 rope dims (head 576,
# as released), per-head nope/v dims of 256 (multiples of 256 for K-quants), one dense layer first, one shared
# expert, 8 routed experts in 4 groups (2 groups chosen), sigmoid scores, a selection bias, routed weights x 2.5.
DEEPSEEK = {"q_lora": 256, "kv_lora": 512, "nope": 256, "rope": 64, "v": 256, "n_dense": 1, "dense_ffn": 512,
            "n_shared": 1, "groups": 4, "groups_used": 2, "scale": 2.5}


def make_spec(arch: str, dtype: str, tied: bool | None = None, seed: int = 0) -> ModelSpec:
    """The standard spec for an architecture: each differs in rope theta, eps and tying, so that a loader
    which ignores a metadata field, or hard-codes a default, gets different logits."""
    if arch == "llama":
        return ModelSpec("llama", dtype, tied=True if tied is None else tied, seed=seed)
    if arch == "qwen2":
        return ModelSpec("qwen2", dtype, tied=False if tied is None else tied, seed=seed,
                         rope_theta=1000000.0, rms_eps=1e-6, vocab_size=576)
    if arch == "qwen3":  # head size 128 with dim 256: q is wider than the residual, as in Qwen3
        return ModelSpec("qwen3", dtype, tied=False if tied is None else tied, seed=seed, rope_theta=1000000.0,
                         rms_eps=1e-6, vocab_size=576, key_length=128)
    if arch == "qwen3moe":
        return ModelSpec("qwen3moe", dtype, tied=False if tied is None else tied, seed=seed, ffn_dim=256,
                         n_experts=4, n_experts_used=2, rope_theta=1000000.0, rms_eps=1e-6, vocab_size=512)
    if arch == "gemma3":  # six layers so one is global; a window of 6 so the parity sequences slide past it;
        # one KV head (as Gemma 3 270M) and a narrow FFN keep six layers under 10 MB in F32
        return ModelSpec("gemma3", dtype, tied=True if tied is None else tied, seed=seed, n_layers=6, n_kv_heads=1,
                         ffn_dim=256, rope_theta=1000000.0, rms_eps=1e-6, sliding_window=6)
    if arch == "gptoss":  # two layers: one sliding (window 6), one global
        return ModelSpec("gptoss", dtype, tied=False if tied is None else tied, seed=seed, ffn_dim=256, n_experts=4,
                         n_experts_used=2, rope_theta=150000.0, rms_eps=1e-5, vocab_size=512, sliding_window=6)
    if arch == "deepseek2":  # YaRN as V3 ships it (factor 40 there); three layers: one dense, two MoE
        return ModelSpec("deepseek2", dtype, tied=False if tied is None else tied, seed=seed, n_layers=3, n_kv_heads=4,
                         ffn_dim=256, n_experts=8, n_experts_used=2, rope_theta=20000.0, rms_eps=1e-6, vocab_size=512,
                         rope_scaling="yarn", rope_factor=4.0, rope_orig_context=256)
    # note: ffn_dim 256 keeps the MoE model (4 experts x 3 matrices x 2 layers) under 10 MB in F32.
    return ModelSpec("mixtral", dtype, tied=False if tied is None else tied, seed=seed, ffn_dim=256,
                     n_experts=4, n_experts_used=2, rope_theta=1000000.0, vocab_size=512)


def parity_specs(dtypes=DTYPES + LOW_BIT_DTYPES) -> list[ModelSpec]:
    """The architecture variants every parity test covers, for each dtype: llama tied and untied, qwen2, mixtral,
    qwen3, qwen3moe, gemma3, gpt-oss, deepseek2."""
    variants = [("llama", True), ("llama", False), ("qwen2", None), ("mixtral", None), ("qwen3", None),
                ("qwen3moe", None), ("gemma3", None), ("gptoss", None), ("deepseek2", None)]
    return [make_spec(arch, dtype, tied) for dtype in dtypes if dtype in DTYPES for arch, tied in variants] + \
        [gpt_oss_as_released(dtype) for dtype in dtypes if dtype in ("F32", "BF16")] + \
        [make_spec(arch, dtype) for dtype in dtypes if dtype in LOW_BIT_DTYPES for arch in LOW_BIT_ARCHS]


def gpt_oss_as_released(dtype: str) -> ModelSpec:
    """gpt-oss with MXFP4 experts and `dtype` elsewhere, as its checkpoints are: the one with a safetensors twin."""
    return dataclasses.replace(make_spec("gptoss", dtype), expert_dtype="MXFP4")


def deepseek_lite_spec(dtype: str) -> ModelSpec:
    """DeepSeek-V2-Lite's layout (one q projection, plain softmax routing) at the small size. llama.cpp takes a
    deepseek2 file for this layout only at 26 or 27 layers, so it is checked against the NumPy pass, not in
    parity_specs."""
    return dataclasses.replace(make_spec("deepseek2", dtype), lite=True, rope_scaling="", rope_factor=1.0,
                               rope_orig_context=0)


def twin_specs() -> list[ModelSpec]:
    """The parity specs that have a Hugging Face twin."""
    return [spec for spec in parity_specs(FLOAT_DTYPES) if spec.has_hf_twin]


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer: a byte-level BPE vocabulary trained on a small built-in corpus.

_CORPUS = """
The engine streams the weights of a large model from host memory to the accelerator, one layer at a time, and
uses the idle time to run a small draft model. The draft proposes a few tokens for every sequence; one pass of the
target model verifies all of them at once. When the draft is right, several tokens are committed for the price of
one pass. When it is wrong, the first token that differs is replaced by the target's own choice.
Questions people ask: What is the capital of France? How many legs does a spider have? Why is the sky blue?
Write a short poem about the sea. Translate "good morning" into Spanish. Summarize the following paragraph.
def fibonacci(n):
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)

for i in range(10):
    print(i, fibonacci(i))

class Queue:
    def __init__(self):
        self.items = []
    def push(self, item):
        self.items.append(item)
    def pop(self):
        return self.items.pop(0)

int main(int argc, char **argv) { return argc > 1 ? 0 : 1; }
Shopping list: apples, bread, cheese, coffee, eggs, flour, milk, oranges, rice, sugar, tea, tomatoes.
1. Open the file. 2. Read every line. 3. Count the words. 4. Print the total and close the file.
In the morning the market was full of people buying fruit, vegetables, fish and flowers, and the children
were running between the stalls while their parents talked about the weather, the prices and the news.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 3.14159 2.71828 1e-5 -7 +12 50% $20 #1 @home
Mathematics: the sum of the first n integers is n(n+1)/2, and the derivative of x^2 is 2x.
"""

_PRETOKEN_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (byte-level BPE stores tokens in this alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@dataclasses.dataclass(frozen=True)
class Vocab:
    tokens: list[str]  # (vocab_size,) in byte-level alphabet; specials first
    token_types: list[int]  # gguf.TokenType per token
    merges: list[str]  # "left right", in rank order

    def token_id(self, token: str) -> int:
        return self.tokens.index(token)


@functools.lru_cache(maxsize=None)
def build_vocab(vocab_size: int) -> Vocab:
    """Specials, the 256 byte tokens, then merges learned greedily from `_CORPUS` until the vocabulary is full.
    Ties in pair counts break by the pair's text, so the result never depends on dict ordering."""
    byte_map = _byte_to_unicode()
    tokens = list(SPECIAL_TOKENS) + [byte_map[b] for b in range(256)]
    types = [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS) + [gguf.TokenType.NORMAL] * 256
    counted = collections.Counter(
        tuple(byte_map[b] for b in piece.encode("utf-8")) for piece in _PRETOKEN_RE.findall(_CORPUS))
    words = [list(w) for w in counted]  # each distinct pre-token as a list of symbols
    freq = list(counted.values())
    pairs: collections.Counter = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of words containing it
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)
    merges = []
    while len(tokens) < vocab_size:
        live = [p for p, c in pairs.items() if c > 0]
        if not live:
            raise ValueError(f"corpus too small for a vocabulary of {vocab_size}: stopped at {len(tokens)}")
        best = min(live, key=lambda pair: (-pairs[pair], pair))
        merged = best[0] + best[1]
        merges.append(f"{best[0]} {best[1]}")
        tokens.append(merged)
        types.append(gguf.TokenType.NORMAL)
        for i in sorted(where.pop(best)):
            word = words[i]
            for pair in zip(word, word[1:]):  # take the word's pairs out, merge, put them back
                pairs[pair] -= freq[i]
            out, k = [], 0
            while k < len(word):
                if k + 1 < len(word) and (word[k], word[k + 1]) == best:
                    out.append(merged)
                    k += 2
                else:
                    out.append(word[k])
                    k += 1
            words[i] = out
            for pair in zip(out, out[1:]):
                pairs[pair] += freq[i]
                where[pair].add(i)
        del pairs[best]
    return Vocab(tokens, [int(t) for t in types], merges)


def _tokenizer_json(vocab: Vocab) -> dict:
    """The same vocabulary as a Hugging Face `tokenizers` byte-level BPE (GPT-2 pre-tokenizer)."""
    added = [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, tok in enumerate(SPECIAL_TOKENS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {tok: i for i, tok in enumerate(vocab.tokens)},
                  "merges": [m.split(" ") for m in vocab.merges]},
    }


# ----------------------------------------------------------------------------------------------------------------
# Weights. Every tensor is first produced in Hugging Face layout as "stored" data: float16/float32 arrays, bf16 bit
# patterns (uint16), or quantized blocks (uint8, one row of blocks per weight row).

@dataclasses.dataclass
class StoredTensor:
    data: np.ndarray  # float32 / float16 / uint16 (bf16 bits) / uint8 (quant blocks), rows on axis -2
    qtype: Q  # the GGUF type of `data`

    def dequantized(self) -> np.ndarray:
        """float32 values, the meaning this tensor has in both twins."""
        if self.qtype == Q.BF16:
            return (self.data.astype(np.uint32) << 16).view(np.float32)
        return gguf.quants.dequantize(self.data, self.qtype).astype(np.float32)


def _round_to_bf16_grid(values: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bf16 value (ties to even) and return it as float32."""
    return (_bf16_bits(values).astype(np.uint32) << 16).view(np.float32)


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
    return (rounded >> 16).astype(np.uint16)


def _random_q4_k(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Valid Q4_K blocks: value = d*sc*q - dmin*m per 32-value sub-block, q random in 0..15.
    sc in 32..63 and m chosen so the sub-block mean is near zero; both use all 6 bits, which exercises the
    packed scale layout (high bits of sub-blocks 4..7 live in the top bits of bytes 0..7)."""
    n_blocks = int(np.prod(shape)) // K_QUANT_BLOCK
    sc = rng.integers(32, 64, size=(n_blocks, 8))
    q_std = np.sqrt((16 * 16 - 1) / 12.0)  # std of a uniform 0..15 integer
    d = (std / (sc.mean(axis=1) * q_std) * rng.uniform(0.8, 1.2, n_blocks)).astype(np.float16)
    dmin = (d.astype(np.float32) * 8.0).astype(np.float16)
    ratio = d.astype(np.float32) / dmin.astype(np.float32)
    m = np.clip(np.rint(sc * 7.5 * ratio[:, None] + rng.normal(0, 1, sc.shape)), 0, 63).astype(np.uint8)
    sc = sc.astype(np.uint8)
    scales = np.empty((n_blocks, 12), np.uint8)
    scales[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    qs = rng.integers(0, 256, size=(n_blocks, 128), dtype=np.uint8)
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), scales, qs], 1)
    return blocks.reshape(*shape[:-1], shape[-1] // K_QUANT_BLOCK * 144)


def _random_q5_k(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Valid Q5_K blocks: Q4_K's layout with a fifth bit per value from qh (q random in 0..31); dmin = 16 d so
    that the mins (6 bits) can center the sub-blocks."""
    n_blocks = int(np.prod(shape)) // K_QUANT_BLOCK
    sc = rng.integers(32, 64, size=(n_blocks, 8))
    q_std = np.sqrt((32 * 32 - 1) / 12.0)
    d = (std / (sc.mean(axis=1) * q_std) * rng.uniform(0.8, 1.2, n_blocks)).astype(np.float16)
    dmin = (d.astype(np.float32) * 16.0).astype(np.float16)
    ratio = d.astype(np.float32) / dmin.astype(np.float32)
    m = np.clip(np.rint(sc * 15.5 * ratio[:, None] + rng.normal(0, 1, sc.shape)), 0, 63).astype(np.uint8)
    sc = sc.astype(np.uint8)
    scales = np.empty((n_blocks, 12), np.uint8)
    scales[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    qh = rng.integers(0, 256, size=(n_blocks, 32), dtype=np.uint8)
    qs = rng.integers(0, 256, size=(n_blocks, 128), dtype=np.uint8)
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), scales, qh, qs], 1)
    return blocks.reshape(*shape[:-1], shape[-1] // K_QUANT_BLOCK * 176)


def _random_q2_k(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Valid Q2_K blocks: value = d*sc*q - dmin*m per 16-value sub-block, q random in 0..3, sc in 8..15 and
    m = sc * 3/4 (dmin = 2 d) so each sub-block's mean is near zero."""
    n_blocks = int(np.prod(shape)) // K_QUANT_BLOCK
    sc = rng.integers(8, 16, size=(n_blocks, 16))
    q_std = np.sqrt((4 * 4 - 1) / 12.0)
    d = (std / (sc.mean(axis=1) * q_std) * rng.uniform(0.8, 1.2, n_blocks)).astype(np.float16)
    dmin = (d.astype(np.float32) * 2.0).astype(np.float16)
    m = np.clip(np.rint(sc * 0.75 + rng.normal(0, 0.5, sc.shape)), 0, 15).astype(np.uint8)
    scales = (sc.astype(np.uint8) | (m << 4)).astype(np.uint8)
    qs = rng.integers(0, 256, size=(n_blocks, 64), dtype=np.uint8)
    blocks = np.concatenate([scales, qs, d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2)], 1)
    return blocks.reshape(*shape[:-1], shape[-1] // K_QUANT_BLOCK * 84)


def _random_q3_k(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Valid Q3_K blocks: value = d*(s-32)*q per 16-value sub-block, q in -4..3 (2 bits from qs, the third from
    hmask), 6-bit scales s - 32 of both signs with magnitude 16..31, packed as llama.cpp packs them."""
    n_blocks = int(np.prod(shape)) // K_QUANT_BLOCK
    magnitude = rng.integers(16, 32, size=(n_blocks, 16))
    signed = np.where(rng.random((n_blocks, 16)) < 0.5, -magnitude, magnitude)
    s = (signed + 32).astype(np.uint8)  # 0..63
    q_rms = np.sqrt(5.5)  # of a uniform -4..3 integer
    d = (std / (magnitude.mean(axis=1) * q_rms) * rng.uniform(0.8, 1.2, n_blocks)).astype(np.float16)
    packed = np.zeros((n_blocks, 12), np.uint8)
    for j in range(16):
        low, high = s[:, j] & 0x0F, s[:, j] >> 4
        packed[:, j % 8] |= (low << (4 * (j // 8))).astype(np.uint8)
        packed[:, 8 + j % 4] |= (high << (2 * (j // 4))).astype(np.uint8)
    hmask = rng.integers(0, 256, size=(n_blocks, 32), dtype=np.uint8)
    qs = rng.integers(0, 256, size=(n_blocks, 64), dtype=np.uint8)
    blocks = np.concatenate([hmask, qs, packed, d.view(np.uint8).reshape(-1, 2)], 1)
    return blocks.reshape(*shape[:-1], shape[-1] // K_QUANT_BLOCK * 110)


def _random_q6_k(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Valid Q6_K blocks: value = d*scale*(q-32) per 16-value group, q random in 0..63, int8 scales of both
    signs with magnitude 16..127 (negative scales are legal and a sign bug in a kernel shows up)."""
    n_blocks = int(np.prod(shape)) // K_QUANT_BLOCK
    magnitude = rng.integers(16, 128, size=(n_blocks, 16))
    scales = (magnitude * rng.choice([-1, 1], size=magnitude.shape)).astype(np.int8)
    q_std = np.sqrt((64 * 64 - 1) / 12.0)
    d = (std / (magnitude.mean(axis=1) * q_std) * rng.uniform(0.8, 1.2, n_blocks)).astype(np.float16)
    ql = rng.integers(0, 256, size=(n_blocks, 128), dtype=np.uint8)
    qh = rng.integers(0, 256, size=(n_blocks, 64), dtype=np.uint8)
    blocks = np.concatenate([ql, qh, scales.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    return blocks.reshape(*shape[:-1], shape[-1] // K_QUANT_BLOCK * 210)


def _store(rng: np.random.Generator, shape: tuple[int, ...], std: float, dtype: str) -> StoredTensor:
    """One matmul weight of logical `shape` with entries of about `std`, stored in `dtype`."""
    if dtype == "Q4_K":
        return StoredTensor(_random_q4_k(rng, shape, std), Q.Q4_K)
    if dtype == "Q6_K":
        return StoredTensor(_random_q6_k(rng, shape, std), Q.Q6_K)
    if dtype == "Q5_K":
        return StoredTensor(_random_q5_k(rng, shape, std), Q.Q5_K)
    if dtype == "Q2_K":
        return StoredTensor(_random_q2_k(rng, shape, std), Q.Q2_K)
    if dtype == "Q3_K":
        return StoredTensor(_random_q3_k(rng, shape, std), Q.Q3_K)
    values = rng.normal(0.0, std, size=shape).astype(np.float32)
    if dtype == "F32":
        return StoredTensor(values, Q.F32)
    if dtype == "F16":
        return StoredTensor(values.astype(np.float16), Q.F16)
    if dtype == "BF16":
        return StoredTensor(_bf16_bits(values), Q.BF16)
    qtype = Q[dtype]
    return StoredTensor(gguf.quants.quantize(values, qtype), qtype)


def _store_small_f32(rng: np.random.Generator, shape: tuple[int, ...], mean: float, std: float) -> StoredTensor:
    """Norm weights, biases, router: F32 in GGUF, on the bf16 grid so any HF dtype holds them exactly."""
    return StoredTensor(_round_to_bf16_grid(rng.normal(mean, std, size=shape).astype(np.float32)), Q.F32)


def build_hf_tensors(spec: ModelSpec) -> dict[str, StoredTensor]:
    """All tensors of `spec` in Hugging Face names and layout (q_proj/k_proj rows in rotate_half order).

    Scales keep activations realistic through the layers: RMS-normed inputs have unit RMS, so a projection with
    entries of std 1/sqrt(fan_in) gives unit-size outputs (attention scores of std ~1, no saturated softmax); the
    attention and FFN outputs are large next to the embedding (else a tied model mostly predicts its input
    token again); the output matrix gives logits with a std of about 4, as a trained model's."""
    rng = np.random.default_rng([spec.seed, ARCHS.index(spec.arch), (DTYPES + LOW_BIT_DTYPES).index(spec.dtype),
                                 int(spec.tied)])
    dim, ffn, hd = spec.dim, spec.ffn_dim, spec.head_dim
    kv_dim = spec.n_kv_heads * hd
    in_std, ffn_std = dim ** -0.5, ffn ** -0.5
    t: dict[str, StoredTensor] = {}
    gemma = spec.arch == "gemma3"
    # note: Gemma's HF norms hold w for a scale of 1 + w (its GGUF converter stores 1 + w).
    norm_mean = 0.0 if gemma else 1.0
    t["model.embed_tokens.weight"] = _store(rng, (spec.vocab_size, dim), 0.25, spec.dtype)
    q_dim = spec.n_heads * hd
    for i in range(spec.n_layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = _store_small_f32(rng, (dim,), norm_mean, 0.1)
        if spec.arch == "deepseek2":
            _deepseek_layer(rng, spec, i, t)
            continue
        t[p + "self_attn.q_proj.weight"] = _store(rng, (q_dim, dim), 1.5 * in_std, spec.dtype)
        t[p + "self_attn.k_proj.weight"] = _store(rng, (kv_dim, dim), 1.5 * in_std, spec.dtype)
        t[p + "self_attn.v_proj.weight"] = _store(rng, (kv_dim, dim), in_std, spec.dtype)
        t[p + "self_attn.o_proj.weight"] = _store(rng, (dim, q_dim), 1.5 * q_dim ** -0.5, spec.dtype)
        if spec.arch in ("qwen2", "gptoss"):
            t[p + "self_attn.q_proj.bias"] = _store_small_f32(rng, (spec.n_heads * hd,), 0.0, 0.3)
            t[p + "self_attn.k_proj.bias"] = _store_small_f32(rng, (kv_dim,), 0.0, 0.3)
            t[p + "self_attn.v_proj.bias"] = _store_small_f32(rng, (kv_dim,), 0.0, 0.3)
        if spec.arch == "gptoss":
            t[p + "self_attn.o_proj.bias"] = _store_small_f32(rng, (dim,), 0.0, 0.3)
            t[p + "self_attn.sinks"] = _store_small_f32(rng, (spec.n_heads,), 0.0, 1.0)
        if spec.arch in QK_NORM_ARCHS:
            t[p + "self_attn.q_norm.weight"] = _store_small_f32(rng, (hd,), norm_mean, 0.1)
            t[p + "self_attn.k_norm.weight"] = _store_small_f32(rng, (hd,), norm_mean, 0.1)
        # note: Gemma's embeddings enter times sqrt(dim) (RMS 4 here); its post-norms scale each block's output
        # by 10 so that the blocks, not the input token (tied: its own row scores high), decide the prediction.
        post_mean = 9.0 if gemma else norm_mean
        t[p + "post_attention_layernorm.weight"] = _store_small_f32(rng, (dim,), post_mean, 0.1)
        if gemma:
            t[p + "pre_feedforward_layernorm.weight"] = _store_small_f32(rng, (dim,), norm_mean, 0.1)
            t[p + "post_feedforward_layernorm.weight"] = _store_small_f32(rng, (dim,), post_mean, 0.1)
        if spec.arch == "gptoss":
            t[p + "mlp.router.weight"] = _store_small_f32(rng, (spec.n_experts, dim), 0.0, 2 * in_std)
            t[p + "mlp.router.bias"] = _store_small_f32(rng, (spec.n_experts,), 0.0, 0.5)
            experts_dtype = spec.expert_dtype or spec.dtype
            for e in range(spec.n_experts):
                ep = f"{p}mlp.experts.{e}."
                # note: entries of 2/sqrt(dim) put gate and up near the clamp at 7 now and then
                t[ep + "gate_proj.weight"] = _store(rng, (ffn, dim), 2 * in_std, experts_dtype)
                t[ep + "up_proj.weight"] = _store(rng, (ffn, dim), 2 * in_std, experts_dtype)
                t[ep + "down_proj.weight"] = _store(rng, (dim, ffn), 2.0 * ffn_std, experts_dtype)
            t[p + "mlp.experts.gate_bias"] = _store_small_f32(rng, (spec.n_experts, ffn), 0.0, 0.3)
            t[p + "mlp.experts.up_bias"] = _store_small_f32(rng, (spec.n_experts, ffn), 0.0, 0.3)
            t[p + "mlp.experts.down_bias"] = _store_small_f32(rng, (spec.n_experts, dim), 0.0, 0.3)
        elif spec.arch == "qwen3moe":
            t[p + "mlp.gate.weight"] = _store_small_f32(rng, (spec.n_experts, dim), 0.0, 2 * in_std)
            for e in range(spec.n_experts):
                ep = f"{p}mlp.experts.{e}."
                t[ep + "gate_proj.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)
                t[ep + "up_proj.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)
                t[ep + "down_proj.weight"] = _store(rng, (dim, ffn), 2.0 * ffn_std, spec.dtype)
        elif spec.arch == "mixtral":
            t[p + "block_sparse_moe.gate.weight"] = _store_small_f32(rng, (spec.n_experts, dim), 0.0, 2 * in_std)
            for e in range(spec.n_experts):
                ep = f"{p}block_sparse_moe.experts.{e}."
                t[ep + "w1.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)  # gate
                t[ep + "w2.weight"] = _store(rng, (dim, ffn), 2.0 * ffn_std, spec.dtype)  # down
                t[ep + "w3.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)  # up
        else:
            t[p + "mlp.gate_proj.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)
            t[p + "mlp.up_proj.weight"] = _store(rng, (ffn, dim), in_std, spec.dtype)
            t[p + "mlp.down_proj.weight"] = _store(rng, (dim, ffn), 2.0 * ffn_std, spec.dtype)
    t["model.norm.weight"] = _store_small_f32(rng, (dim,), norm_mean, 0.1)
    if not spec.tied:
        t["lm_head.weight"] = _store(rng, (spec.vocab_size, dim), 0.25, spec.dtype)
    return t


def _deepseek_layer(rng: np.random.Generator, spec: ModelSpec, i: int, t: dict[str, StoredTensor]) -> None:
    """One DeepSeek layer after its input norm. kv_b_proj is kept split as GGUF has it (k_b per head transposed,
    v_b per head) under the names *.k_b / *.v_b; the HF writer joins them (exact: float dtypes only)."""
    d, dim, h = DEEPSEEK, spec.dim, spec.n_heads
    p = f"model.layers.{i}."
    qk, rank = d["nope"] + d["rope"], d["kv_lora"]
    if spec.lite:
        t[p + "self_attn.q_proj.weight"] = _store(rng, (h * qk, dim), 1.5 * dim ** -0.5, spec.dtype)
    else:
        t[p + "self_attn.q_a_proj.weight"] = _store(rng, (d["q_lora"], dim), dim ** -0.5, spec.dtype)
        t[p + "self_attn.q_a_layernorm.weight"] = _store_small_f32(rng, (d["q_lora"],), 1.0, 0.1)
        t[p + "self_attn.q_b_proj.weight"] = _store(rng, (h * qk, d["q_lora"]), 1.5 * d["q_lora"] ** -0.5,
                                                    spec.dtype)
    t[p + "self_attn.kv_a_proj_with_mqa.weight"] = _store(rng, (rank + d["rope"], dim), 1.5 * dim ** -0.5, spec.dtype)
    t[p + "self_attn.kv_a_layernorm.weight"] = _store_small_f32(rng, (rank,), 1.0, 0.1)
    t[p + "self_attn.k_b"] = _store(rng, (h, rank, d["nope"]), rank ** -0.5, spec.dtype)
    t[p + "self_attn.v_b"] = _store(rng, (h, d["v"], rank), rank ** -0.5, spec.dtype)
    t[p + "self_attn.o_proj.weight"] = _store(rng, (dim, h * d["v"]), 1.5 * (h * d["v"]) ** -0.5, spec.dtype)
    t[p + "post_attention_layernorm.weight"] = _store_small_f32(rng, (dim,), 1.0, 0.1)
    if i < d["n_dense"]:
        ffn = d["dense_ffn"]
        t[p + "mlp.gate_proj.weight"] = _store(rng, (ffn, dim), dim ** -0.5, spec.dtype)
        t[p + "mlp.up_proj.weight"] = _store(rng, (ffn, dim), dim ** -0.5, spec.dtype)
        t[p + "mlp.down_proj.weight"] = _store(rng, (dim, ffn), 2.0 * ffn ** -0.5, spec.dtype)
        return
    ffn, shared = spec.ffn_dim, d["n_shared"] * spec.ffn_dim
    t[p + "mlp.gate.weight"] = _store_small_f32(rng, (spec.n_experts, dim), 0.0, 2 * dim ** -0.5)
    if not spec.lite:
        t[p + "mlp.gate.e_score_correction_bias"] = _store_small_f32(rng, (spec.n_experts,), 0.0, 0.3)
    for e in range(spec.n_experts):
        ep = f"{p}mlp.experts.{e}."
        t[ep + "gate_proj.weight"] = _store(rng, (ffn, dim), dim ** -0.5, spec.dtype)
        t[ep + "up_proj.weight"] = _store(rng, (ffn, dim), dim ** -0.5, spec.dtype)
        t[ep + "down_proj.weight"] = _store(rng, (dim, ffn), ffn ** -0.5, spec.dtype)
    t[p + "mlp.shared_experts.gate_proj.weight"] = _store(rng, (shared, dim), dim ** -0.5, spec.dtype)
    t[p + "mlp.shared_experts.up_proj.weight"] = _store(rng, (shared, dim), dim ** -0.5, spec.dtype)
    t[p + "mlp.shared_experts.down_proj.weight"] = _store(rng, (dim, shared), shared ** -0.5, spec.dtype)


def join_kv_b(k_b: np.ndarray, v_b: np.ndarray) -> np.ndarray:
    """HF kv_b_proj (n_heads * (nope + v), kv_lora) from GGUF's per-head k_b (n_heads, kv_lora, nope) and v_b
    (n_heads, v, kv_lora): each head's nope rows (k_b transposed), then its v rows."""
    return np.concatenate([k_b.swapaxes(1, 2), v_b], axis=1).reshape(-1, k_b.shape[1])


# ----------------------------------------------------------------------------------------------------------------
# GGUF

def rope_rows_hf_to_gguf(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the rows of an HF q_proj/k_proj (axis 0) into GGUF's llama layout.

    note: HF llama rotates dimension i with i + head_dim/2 (rotate_half); llama.cpp's llama rope rotates adjacent
    pairs (2i, 2i+1). Within each head, GGUF row 2i+j is HF row j*head_dim/2 + i, so both give the same model.
    qwen2 needs no reordering: llama.cpp applies NeoX (rotate_half) rope to it."""
    half = rows.shape[0] // n_heads // 2
    return rows.reshape(n_heads, 2, half, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def rope_rows_gguf_to_hf(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of `rope_rows_hf_to_gguf`."""
    half = rows.shape[0] // n_heads // 2
    return rows.reshape(n_heads, half, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


_GGUF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "block_sparse_moe.gate.weight": "ffn_gate_inp.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    # gpt-oss
    "self_attn.o_proj.bias": "attn_output.bias",
    "self_attn.sinks": "attn_sinks.weight",
    "mlp.router.weight": "ffn_gate_inp.weight",
    "mlp.router.bias": "ffn_gate_inp.bias",
    "mlp.experts.gate_bias": "ffn_gate_exps.bias",
    "mlp.experts.up_bias": "ffn_up_exps.bias",
    "mlp.experts.down_bias": "ffn_down_exps.bias",
    # deepseek2
    "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
    "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
    "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
    "self_attn.k_b": "attn_k_b.weight",
    "self_attn.v_b": "attn_v_b.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
}
# Gemma's HF names mean other things: its post_attention_layernorm norms the attention output.
_GGUF_GEMMA_LAYER_NAMES = {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}
_GGUF_EXPERT_NAMES = {"w1": "ffn_gate_exps.weight", "w2": "ffn_down_exps.weight", "w3": "ffn_up_exps.weight",
                      "gate_proj": "ffn_gate_exps.weight", "down_proj": "ffn_down_exps.weight",
                      "up_proj": "ffn_up_exps.weight"}


def build_gguf_tensors(spec: ModelSpec) -> dict[str, StoredTensor]:
    """GGUF names and layout: experts stacked to (n_experts, rows, cols); llama/mixtral Q/K rows permuted; Gemma's
    norms stored as 1 + w, as its converter does."""
    hf = build_hf_tensors(spec)
    out: dict[str, StoredTensor] = {}
    experts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    gemma = spec.arch == "gemma3"
    for name, tensor in hf.items():
        if gemma and name.endswith("norm.weight"):  # exact: bf16-grid values plus 1 fit f32
            tensor = StoredTensor(tensor.data + np.float32(1.0), tensor.qtype)
        if name == "model.embed_tokens.weight":
            out["token_embd.weight"] = tensor
        elif name == "model.norm.weight":
            out["output_norm.weight"] = tensor
        elif name == "lm_head.weight":
            out["output.weight"] = tensor
        else:
            layer, rest = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name).groups()
            expert = re.fullmatch(r"(?:block_sparse_moe|mlp)\.experts\.(\d+)\.(w[123]|\w+_proj)\.weight", rest)
            if expert:
                experts[f"blk.{layer}.{_GGUF_EXPERT_NAMES[expert.group(2)]}"].append(tensor)
                continue
            data = tensor.data
            if spec.interleaved_rope and rest in ("self_attn.q_proj.weight", "self_attn.k_proj.weight"):
                heads = spec.n_heads if rest.startswith("self_attn.q") else spec.n_kv_heads
                data = rope_rows_hf_to_gguf(data, heads)
            names = {**_GGUF_LAYER_NAMES, **(_GGUF_GEMMA_LAYER_NAMES if gemma else {})}
            if spec.arch == "gptoss":  # its FFN input norm is called post_attention_norm in GGUF
                names["post_attention_layernorm.weight"] = "post_attention_norm.weight"
            out[f"blk.{layer}.{names[rest]}"] = StoredTensor(data, tensor.qtype)
    for name, parts in experts.items():  # experts were appended in index order
        out[name] = StoredTensor(np.stack([p.data for p in parts]), parts[0].qtype)
    return out


def _deepseek_metadata(spec: ModelSpec, writer: gguf.GGUFWriter, legacy_kv_b: bool = False) -> None:
    """As llama.cpp's converter writes absorbed-MLA files: the cache's sizes under key/value_length (one KV head),
    the per-head ones under *_mla, yarn_log_multiplier as 0.1 * mscale_all_dim (1 here). Legacy files: the
    per-head sizes under the plain keys."""
    d = DEEPSEEK
    if legacy_kv_b:
        writer.add_head_count_kv(spec.n_heads)
        writer.add_key_length(d["nope"] + d["rope"])
        writer.add_value_length(d["v"])
    else:
        writer.add_head_count_kv(1)
        writer.add_key_length(d["kv_lora"] + d["rope"])
        writer.add_value_length(d["kv_lora"])
        writer.add_key_length_mla(d["nope"] + d["rope"])
        writer.add_value_length_mla(d["v"])
    writer.add_rope_dimension_count(d["rope"])
    writer.add_kv_lora_rank(d["kv_lora"])
    writer.add_leading_dense_block_count(d["n_dense"])
    writer.add_expert_shared_count(d["n_shared"])
    if spec.lite:  # V2-Lite: softmax probabilities as they come
        writer.add_expert_weights_scale(1.0)
        writer.add_expert_weights_norm(False)
        writer.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
        return
    writer.add_q_lora_rank(d["q_lora"])
    writer.add_expert_weights_scale(d["scale"])
    writer.add_expert_weights_norm(True)
    writer.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    writer.add_expert_group_count(d["groups"])
    writer.add_expert_group_used_count(d["groups_used"])
    if spec.rope_scaling == "yarn":
        writer.add_rope_scaling_yarn_log_mul(0.1)


def write_gguf(spec: ModelSpec, path: Path, block_count: int | None = None, legacy_kv_b: bool = False) -> Path:
    """Write `spec` as a GGUF file (written to a temporary name first, so a reader never sees half a file).
    block_count: a layer count for the metadata other than the tensors' (a damaged file, for error tests).
    legacy_kv_b: deepseek2 as converted before absorbed MLA (whole attn_kv_b, per-head sizes under the plain
    keys, as many KV heads as query heads); float dtypes only."""
    path = Path(path)
    vocab = build_vocab(spec.vocab_size)
    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), spec.gguf_arch)
    writer.add_name(f"specoffload random {spec.name}")
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.dim)
    writer.add_block_count(spec.n_layers if block_count is None else block_count)
    writer.add_feed_forward_length(DEEPSEEK["dense_ffn"] if spec.arch == "deepseek2" else spec.ffn_dim)
    writer.add_head_count(spec.n_heads)
    if spec.arch == "deepseek2":
        _deepseek_metadata(spec, writer, legacy_kv_b)
    else:
        writer.add_head_count_kv(spec.n_kv_heads)
        writer.add_rope_dimension_count(spec.head_dim)
    if spec.key_length:
        writer.add_key_length(spec.head_dim)
        writer.add_value_length(spec.head_dim)
    if spec.sliding_window:
        writer.add_sliding_window(spec.sliding_window)
    writer.add_rope_freq_base(spec.rope_theta)
    writer.add_layer_norm_rms_eps(spec.rms_eps)
    writer.add_vocab_size(spec.vocab_size)
    if spec.rope_scaling in ("linear", "yarn"):
        writer.add_rope_scaling_type(gguf.RopeScalingType(spec.rope_scaling))
        writer.add_rope_scaling_factor(spec.rope_factor)
        writer.add_rope_scaling_orig_ctx_len(spec.rope_orig_context or spec.context_length)
    if spec.n_experts:
        writer.add_expert_count(spec.n_experts)
        writer.add_expert_used_count(spec.n_experts_used)
        if spec.arch in ("qwen3moe", "gptoss", "deepseek2"):
            writer.add_expert_feed_forward_length(spec.ffn_dim)
    writer.add_tokenizer_model("gpt2")
    # note: "gpt-2" rather than "default": llama.cpp then splits text with GPT-2's pre-tokenizer regex, the same
    # one the HF twin's ByteLevel pre-tokenizer uses, so both twins tokenize alike ("default" adds extra splits).
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_pad_token_id(PAD_ID)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)
    tensors = build_gguf_tensors(spec)
    for name in [n for n in tensors if legacy_kv_b and n.endswith("attn_k_b.weight")]:
        k_b, v_b = tensors.pop(name), tensors.pop(name.replace("attn_k_b", "attn_v_b"))
        assert k_b.qtype in (Q.F32, Q.F16), "legacy kv_b files are written from float weights"
        tensors[name.replace("attn_k_b", "attn_kv_b")] = StoredTensor(join_kv_b(k_b.data, v_b.data), k_b.qtype)
    for name, tensor in tensors.items():
        raw = None if tensor.qtype in (Q.F32, Q.F16) else tensor.qtype
        writer.add_tensor(name, tensor.data, raw_dtype=raw)
    if spec.rope_scaling == "llama3":
        writer.add_tensor("rope_freqs.weight", spec.llama3_freq_factors())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Hugging Face twin

_SAFETENSORS_DTYPE = {Q.F32: "float32", Q.F16: "float16", Q.BF16: "bfloat16"}


def _hf_config(spec: ModelSpec) -> dict:
    arch_names = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mixtral": "MixtralForCausalLM",
                  "qwen3": "Qwen3ForCausalLM", "qwen3moe": "Qwen3MoeForCausalLM", "gemma3": "Gemma3ForCausalLM",
                  "deepseek2": "DeepseekV3ForCausalLM", "gptoss": "GptOssForCausalLM"}
    model_types = {"qwen3moe": "qwen3_moe", "gemma3": "gemma3_text"}
    config = {
        "architectures": [arch_names[spec.arch]],
        "model_type": model_types.get(spec.arch, spec.arch),
        "hidden_size": spec.dim,
        "intermediate_size": spec.ffn_dim,
        "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv_heads,
        "num_hidden_layers": spec.n_layers,
        "head_dim": spec.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": spec.rms_eps,
        "rope_theta": spec.rope_theta,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.context_length,
        "tie_word_embeddings": spec.tied,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[spec.dtype],
    }
    if spec.arch == "mixtral":
        config["num_local_experts"] = spec.n_experts
        config["num_experts_per_tok"] = spec.n_experts_used
    if spec.arch == "qwen3moe":
        config.update({"num_experts": spec.n_experts, "num_experts_per_tok": spec.n_experts_used,
                       "moe_intermediate_size": spec.ffn_dim, "norm_topk_prob": True, "decoder_sparse_step": 1,
                       "mlp_only_layers": []})
    if spec.arch == "gemma3":
        config.update({"hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": spec.head_dim,
                       "sliding_window": spec.sliding_window, "rope_local_base_freq": 10000.0,
                       "layer_types": ["sliding_attention" if s else "full_attention" for s in spec.sliding_layers()],
                       "final_logit_softcapping": None, "attn_logit_softcapping": None})
    if spec.arch == "gptoss":
        config.update({"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
                       "num_local_experts": spec.n_experts, "num_experts_per_tok": spec.n_experts_used,
                       "sliding_window": spec.sliding_window, "attention_bias": True, "swiglu_limit": 7.0,
                       "layer_types": ["sliding_attention" if s else "full_attention" for s in spec.sliding_layers()],
                       "quantization_config": {"quant_method": "mxfp4"}})
    if spec.arch == "deepseek2":
        d = DEEPSEEK
        config.update({"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
                       "intermediate_size": d["dense_ffn"], "moe_intermediate_size": spec.ffn_dim,
                       "q_lora_rank": d["q_lora"], "kv_lora_rank": d["kv_lora"], "qk_nope_head_dim": d["nope"],
                       "qk_rope_head_dim": d["rope"], "v_head_dim": d["v"], "n_routed_experts": spec.n_experts,
                       "num_experts_per_tok": spec.n_experts_used, "n_shared_experts": d["n_shared"],
                       "first_k_dense_replace": d["n_dense"], "moe_layer_freq": 1, "n_group": d["groups"],
                       "topk_group": d["groups_used"], "topk_method": "noaux_tc", "scoring_func": "sigmoid",
                       "norm_topk_prob": True, "routed_scaling_factor": d["scale"]})
        if spec.lite:
            config.update({"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
                           "q_lora_rank": None, "topk_method": "greedy", "scoring_func": "softmax",
                           "norm_topk_prob": False, "routed_scaling_factor": 1.0, "n_group": 1, "topk_group": 1})
        del config["head_dim"]
    if spec.rope_scaling:
        config["rope_scaling"] = {"rope_type": spec.rope_scaling, "factor": spec.rope_factor}
        if spec.arch == "deepseek2":
            config["rope_scaling"].update({"type": "yarn", "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32,
                                           "beta_slow": 1})
        if spec.rope_scaling in ("yarn", "llama3"):
            config["rope_scaling"]["original_max_position_embeddings"] = spec.rope_orig_context
        if spec.rope_scaling == "llama3":
            config["rope_scaling"].update({"low_freq_factor": 1.0, "high_freq_factor": 4.0})
    return config


def _hf_array(tensor: StoredTensor, dtype: str) -> tuple[str, np.ndarray]:
    """(safetensors dtype name, contiguous array) of a tensor stored in the twin's dtype `dtype`."""
    if tensor.qtype == Q.F32 and dtype != "F32":  # norms/biases/router: exact on the bf16 grid
        values = tensor.data
        if dtype == "F16":
            return "float16", np.ascontiguousarray(values.astype(np.float16))
        return "bfloat16", _bf16_bits(values)
    return _SAFETENSORS_DTYPE[tensor.qtype], np.ascontiguousarray(tensor.data)


def mxfp4_gguf_to_hf(raw: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """GGUF MXFP4 bytes (rows, cols / 32 * 17: a scale, then element i low and i + 16 high in byte i) as the HF
    checkpoints hold them: blocks (rows, cols / 32, 16), byte j holding elements 2j (low) and 2j + 1, and scales
    (rows, cols / 32)."""
    blocks = raw.reshape(rows, cols // 32, 17)
    scales, qs = blocks[..., 0], blocks[..., 1:]
    elements = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # (rows, nb, 32) in order
    packed = (elements[..., 0::2] | (elements[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed), np.ascontiguousarray(scales)


def _gpt_oss_hf_experts(spec: ModelSpec, tensors: dict[str, StoredTensor]) -> dict[str, tuple[str, np.ndarray]]:
    """Takes gpt-oss's per-expert tensors out of `tensors` and returns them in its checkpoints' layout: MXFP4 blocks
    and scales per layer, gate and up rows (and biases) interleaved."""
    dim, ffn, out = spec.dim, spec.ffn_dim, {}
    for i in range(spec.n_layers):
        p = f"model.layers.{i}.mlp.experts."
        take = lambda name: [tensors.pop(f"{p}{e}.{name}").data for e in range(spec.n_experts)]  # noqa: E731
        gate = [mxfp4_gguf_to_hf(raw, ffn, dim) for raw in take("gate_proj.weight")]
        up = [mxfp4_gguf_to_hf(raw, ffn, dim) for raw in take("up_proj.weight")]
        down = [mxfp4_gguf_to_hf(raw, dim, ffn) for raw in take("down_proj.weight")]
        interleave = lambda a, b: np.stack([a, b], axis=1).reshape(-1, *a.shape[1:])  # noqa: E731
        out[p + "gate_up_proj_blocks"] = ("uint8", np.stack([interleave(g[0], u[0]) for g, u in zip(gate, up)]))
        out[p + "gate_up_proj_scales"] = ("uint8", np.stack([interleave(g[1], u[1]) for g, u in zip(gate, up)]))
        out[p + "down_proj_blocks"] = ("uint8", np.stack([d[0] for d in down]))
        out[p + "down_proj_scales"] = ("uint8", np.stack([d[1] for d in down]))
        gate_b, up_b = tensors.pop(p + "gate_bias").data, tensors.pop(p + "up_bias").data
        both = StoredTensor(np.ascontiguousarray(np.stack([gate_b, up_b], axis=2).reshape(spec.n_experts, 2 * ffn)),
                            Q.F32)
        out[p + "gate_up_proj_bias"] = _hf_array(both, spec.dtype)
        out[p + "down_proj_bias"] = _hf_array(tensors.pop(p + "down_bias"), spec.dtype)
    return out


def _write_safetensors(path: Path, arrays: dict[str, tuple[str, np.ndarray]]) -> None:
    """Write via the safetensors library's own serializer (its numpy front end has no bfloat16)."""
    specs = {name: safetensors.TensorSpec(dtype=dt, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
             for name, (dt, a) in arrays.items()}
    safetensors.serialize_file(specs, str(path), metadata={"format": "pt"})


def write_hf(spec: ModelSpec, directory: Path, n_shards: int = 1) -> Path:
    """Write the HF twin of `spec` into `directory`: config.json, tokenizer.json and either
    model.safetensors or `n_shards` shards plus model.safetensors.index.json."""
    assert spec.has_hf_twin, f"{spec.dtype} has no safetensors twin"
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(_hf_config(spec), indent=2) + "\n")
    (tmp / "tokenizer.json").write_text(json.dumps(_tokenizer_json(build_vocab(spec.vocab_size))) + "\n")
    (tmp / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": SPECIAL_TOKENS[BOS_ID], "eos_token": SPECIAL_TOKENS[EOS_ID],
        "pad_token": SPECIAL_TOKENS[PAD_ID], "add_bos_token": False, "chat_template": CHATML_TEMPLATE}) + "\n")
    tensors = build_hf_tensors(spec)
    for name in [n for n in tensors if n.endswith(".k_b")]:  # DeepSeek: join k_b and v_b into kv_b_proj
        k_b, v_b = tensors.pop(name), tensors.pop(name[:-3] + "v_b")
        tensors[name[:-3] + "kv_b_proj.weight"] = StoredTensor(join_kv_b(k_b.data, v_b.data), k_b.qtype)
    arrays = _gpt_oss_hf_experts(spec, tensors) if spec.arch == "gptoss" else {}
    arrays.update({name: _hf_array(t, spec.dtype) for name, t in tensors.items()})
    if n_shards == 1:
        _write_safetensors(tmp / "model.safetensors", arrays)
    else:
        # note: split by name order, so every shard holds whole layers' worth of tensors in a mixed order,
        # as real checkpoints do; the index must be read to find a tensor.
        names = sorted(arrays)
        weight_map, total = {}, 0
        for k in range(n_shards):
            shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
            part = {n: arrays[n] for n in names[k::n_shards]}
            _write_safetensors(tmp / shard, part)
            weight_map.update({n: shard for n in part})
            total += sum(a.nbytes for _, a in part.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)
    return directory


def read_hf_tensors(directory: Path) -> dict[str, np.ndarray]:
    """float32 arrays of every tensor in an HF directory (single file or sharded). Uses the safetensors
    library's deserializer, which accepts bfloat16 (its numpy front end does not)."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    out = {}
    for file in files:
        for name, info in safetensors.deserialize((directory / file).read_bytes()):
            raw = np.frombuffer(bytes(info["data"]), dtype=np.uint8)
            dtype = info["dtype"].upper()  # the deserializer names them F32 / F16 / BF16
            if dtype in ("U8", "UINT8"):  # gpt-oss's MXFP4 blocks and scales: bytes, kept as they are
                out[name] = raw.reshape(info["shape"])
                continue
            if dtype in ("BF16", "BFLOAT16"):
                values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                values = raw.view({"F32": np.float32, "FLOAT32": np.float32, "F16": np.float16,
                                   "FLOAT16": np.float16}[dtype])
            out[name] = values.astype(np.float32).reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Cache: each process writes a model once, into one temporary directory removed at exit.

_cache_dir: Path | None = None
_cache: dict[tuple, Path] = {}


def _cache_root() -> Path:
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="specoffload-models-"))
        atexit.register(shutil.rmtree, _cache_dir, True)
    return _cache_dir


def gguf_path(spec: ModelSpec) -> Path:
    """Path of `spec` as GGUF, written on first use in this process."""
    key = ("gguf", spec)
    if key not in _cache:
        _cache[key] = write_gguf(spec, _cache_root() / f"{spec.name}.gguf")
    return _cache[key]


def hf_path(spec: ModelSpec, n_shards: int = 1) -> Path:
    """Path of the HF twin directory of `spec`, written on first use in this process."""
    key = ("hf", spec, n_shards)
    if key not in _cache:
        _cache[key] = write_hf(spec, _cache_root() / f"{spec.name}-hf{n_shards}", n_shards)
    return _cache[key]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR   (writes every parity spec as GGUF, and HF twins)", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for spec in parity_specs():
        print(write_gguf(spec, out / f"{spec.name}.gguf"))
        if spec.has_hf_twin:
            print(write_hf(spec, out / f"{spec.name}-hf"))
            print(write_hf(spec, out / f"{spec.name}-hf2", n_shards=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
