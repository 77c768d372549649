"""llama.cpp (through llama-cpp-python 0.3.36) as the outside reference: all-position logits and greedy tokens.

What the tests must know about this reference:
- llama-cpp-python's defaults are flash attention off and an f16 KV cache. Here the KV cache is f32 (unless
  asked otherwise), which makes llama.cpp as exact as it gets: on an F32 model it then agrees with an f32 NumPy
  pass to ~2e-6 (normalized), against ~1e-3 with the f16 cache. It still rounds activations to f16/bf16 for
  F16/BF16 matmuls and quantizes them (Q8_0 / Q8_1 / Q8_K) for quantized weights, so on those dtypes llama.cpp
  is itself off by ~1e-3 (F16), ~1e-2 (BF16) and a few 1e-2 (quantized); the tests' error bounds allow for that.
- `Llama(..., logits_all=True)` makes `eval` keep the logits of every position in `Llama.scores`
  (shape (n_ctx, n_vocab)); `reset()` rewinds the sequence so a loaded model can be reused.
- Greedy decoding here is argmax over those logits after feeding one token at a time: no sampler, no repetition
  penalty, and EOS does not stop it (its positions are reported instead).
"""

from __future__ import annotations

import atexit

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np

# note: one thread. ggml's OpenMP workers spin at barriers; on a busy 2-core CI machine two threads made each
# llama_decode call ~10x slower than one (20 ms vs 2 ms for a small model), and these models are tiny.
THREADS = int(os.environ.get("SPECOFFLOAD_REFERENCE_THREADS", "1"))

_models: dict[tuple[str, int, bool], object] = {}


@contextlib.contextmanager
def _plain_cpu_kernels():
    """Load models with ggml's plain CPU kernels: no "extra buffer types" (weight repacking, AMX).

    note: Llama() exposes no switch for llama_model_params.use_extra_bufts, so the params factory it calls is
    wrapped while the model loads. Why: on CPUs with AMX, 0.3.36's AMX matmul crashes (SIGSEGV in
    ggml_backend_amx_mul_mat) on SmolLM2-135M's Q4_1 tensors, and repacked kernels differ between machines; the
    plain kernels make the reference the same on every CI machine."""
    import llama_cpp.llama_cpp as low_level

    original = low_level.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    low_level.llama_model_default_params = params
    try:
        yield
    finally:
        low_level.llama_model_default_params = original


@atexit.register
def _close_models() -> None:
    """Free the cached models before interpreter teardown; llama-cpp-python's own destructors run too late then
    (its module globals are gone) and print TypeErrors."""
    while _models:
        _models.popitem()[1].close()


def load(model_path: Path, n_ctx: int = 512, f16_kv: bool = False):
    """A llama_cpp.Llama for `model_path`, loaded once per process (per context size and KV type)."""
    import llama_cpp

    key = (str(model_path), n_ctx, f16_kv)
    if key not in _models:
        kv_type = llama_cpp.GGML_TYPE_F16 if f16_kv else llama_cpp.GGML_TYPE_F32
        with _plain_cpu_kernels():
            _models[key] = llama_cpp.Llama(
                model_path=str(model_path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                n_threads=THREADS, n_threads_batch=THREADS, n_gpu_layers=0, seed=0, flash_attn=False,
                type_k=kv_type, type_v=kv_type, verbose=False)
    return _models[key]


def _context_size(n_tokens: int) -> int:
    """Smallest power of two >= n_tokens, at least 512, so few distinct contexts get loaded."""
    size = 512
    while size < n_tokens:
        size *= 2
    return size


def follows_engine_numerics() -> bool:
    """Whether this llama.cpp build computes a prompt with the float operations the engine's CPU path copies
    (backend/cpu/attention_impl.h, add_kquant_block): its AVX-512 kernels (16-lane tinyBLAS attention and softmax)
    and the VNNI tiled K-quant matmul. Other builds (AVX2 only) take 8-lane orders: the same math, other roundings."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    return "AVX512 = 1" in info and "AVX512_VNNI = 1" in info


def logits(model_path: Path, tokens, prefill: int | None = None, f16_kv: bool = False) -> np.ndarray:
    """Logits after every token of one sequence, float32 (n_tokens, n_vocab).

    With `prefill` = P the first P tokens go in one llama_decode call and the rest one per call, as the engine
    feeds them; with None, all tokens go in one call."""
    tokens = [int(t) for t in tokens]
    llm = load(model_path, _context_size(len(tokens)), f16_kv)
    llm.reset()
    prefill = len(tokens) if prefill is None else prefill
    assert 1 <= prefill <= len(tokens), (prefill, len(tokens))
    llm.eval(tokens[:prefill])
    for token in tokens[prefill:]:
        llm.eval([token])
    return np.array(llm.scores[: len(tokens)], dtype=np.float32, copy=True)


@dataclasses.dataclass
class GreedyResult:
    tokens: list[int]  # (n,) the greedy continuation
    step_logits: np.ndarray  # (n, n_vocab): step_logits[i] are the logits tokens[i] was chosen from
    eos_positions: list[int]  # indices i where tokens[i] is an end-of-generation token

    def top2_gap(self, i: int) -> float:
        """Logit gap between the best and second-best token at step i (small gap: a near tie)."""
        top = np.sort(self.step_logits[i])[-2:]
        return float(top[1] - top[0])


def greedy(model_path: Path, prompt_tokens, n: int) -> GreedyResult:
    """Greedy continuation of exactly n tokens after `prompt_tokens` (prompt in one call, then one per call)."""
    import llama_cpp

    prompt_tokens = [int(t) for t in prompt_tokens]
    llm = load(model_path, _context_size(len(prompt_tokens) + n))
    llm.reset()
    llm.eval(prompt_tokens)
    out, rows = [], []
    for i in range(n):
        row = np.array(llm.scores[len(prompt_tokens) + i - 1], dtype=np.float32, copy=True)
        rows.append(row)
        out.append(int(np.argmax(row)))
        if i + 1 < n:
            llm.eval([out[-1]])
    # note: Llama._model is llama-cpp-python's internal model wrapper; its .vocab is the llama_vocab pointer.
    eos = [i for i, t in enumerate(out) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]
    return GreedyResult(out, np.stack(rows), eos)


def tokenize(model_path: Path, text: str, add_bos: bool = False, special: bool = True) -> list[int]:
    """llama.cpp's tokenization of `text` (special tokens such as <|im_start|> parsed as such)."""
    llm = load(model_path)
    return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))


def detokenize(model_path: Path, tokens) -> str:
    """Text of `tokens`, special tokens rendered (invalid UTF-8 from split characters replaced)."""
    return load(model_path).detokenize([int(t) for t in tokens], special=True).decode("utf-8", errors="replace")
