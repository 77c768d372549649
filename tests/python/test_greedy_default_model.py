"""Greedy generation with the default model (SmolLM2-135M-Instruct, Q4_1) against llama.cpp's greedy tokens.

The engine generates 64 tokens per prompt (`generate --temp 0 --json --ignore-eos`); llama.cpp is fed the engine's
own `prompt_tokens` (so tokenizer differences can neither hide nor cause a mismatch here; tokenizer parity has
its own tests). When the continuations differ, the test prints the first differing position, both tokens there
and llama.cpp's top-2 logit gap; for the worst few prompts also both whole continuations.

Why not plain equality: llama.cpp quantizes activations (to Q8_1) before every Q4_1 matmul, which moves this
model's logits by ~0.05-0.1. An engine that rounds differently (an exact f32 one, say) picks a different token
wherever the top two logits are that close, and from there on the continuations legitimately part. So the hard
check is teacher-forced: along the engine's own continuation, llama.cpp's logits (prompt as one prefill, then
one token per step, as in greedy decoding) must rank every engine token within GREEDY_TIE_GAP of llama.cpp's
best; and such non-argmax picks must stay rare (MAX_OFF_ARGMAX_FRACTION of all generated tokens). Where no
token is off llama.cpp's argmax, the two continuations are equal token for token.

Calibration (dev/calibrate_greedy.py, an exact f32 NumPy forward pass standing in for the engine): its free-running
continuation differs from llama.cpp's on 21 of these 25 prompts, at first-divergence gaps of 0.002-0.51; teacher-
forced, 39 of its 1600 tokens (2.4%) are not llama.cpp's argmax, llama.cpp preferring its own by 0.002-0.51
(95% under 0.21). Exact equality would hold only for an engine that reproduces ggml's activation quantization.
A real bug (wrong rope base, eps, a misread scale) makes many picks that llama.cpp ranks whole logits lower.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
import llama_reference
import parity

N_TOKENS = 64
GREEDY_TIE_GAP = 0.75  # logits: llama.cpp may prefer its own token over the engine's by at most this (seen: 0.51)
MAX_OFF_ARGMAX_FRACTION = 0.06  # of all generated tokens, the share that may be near-tie picks (seen: 2.4%)
FULL_REPORTS = 3  # mismatching prompts (worst first) printed with llama.cpp's own continuation

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"

# Single-line prompts go through `-f` as one batch; multi-line ones (chat format, code) one by one with `-p`.
PROMPTS = [
    "The capital of France is",
    "def quicksort(arr):",
    "Question: How many legs does a spider have? Answer:",
    "List three primary colors:",
    "Translate to French: The cat sits on the mat.",
    "Once upon a time",
    "import numpy as np",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "1, 2, 3, 4, 5,",
    "Write a haiku about autumn leaves.",
    "SELECT name, age FROM users WHERE",
    "In 1969, Neil Armstrong",
    "Explain photosynthesis in simple terms.",
    "#include <stdio.h>",
    "Tips for better sleep: 1.",
    "Hi",
    "Café, naïve, 日本語 and an emoji 🙂 are all Unicode:",
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based inks and a wooden press adapted from wine making; within fifty years "
    "printing shops had spread to more than two hundred European cities, books became cheaper, and",
    CHAT.format("What is 2+2?"),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" + CHAT.format("Give me a list of five fruits."),
    CHAT.format("Write a Python function that reverses a string."),
    CHAT.format("Hello! Who are you?") + "I am SmolLM, an AI assistant.<|im_end|>\n" + CHAT.format("What can you do?"),
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    "Shopping list:\n- eggs\n- milk\n-",
    '{"name": "Alice", "age": 30, "city":',
]


def _describe(model, prompt: str, prompt_tokens: list[int], ours: list[int], forced: np.ndarray,
              with_continuation: bool) -> str:
    """The first position where the engine's token is not llama.cpp's argmax (teacher-forced, so the context is
    still identical there), both tokens, and llama.cpp's top-2 gap; with `with_continuation`, also llama.cpp's
    own free-running continuation (64 more decode steps, so only for a few prompts)."""
    prefers = forced.max(axis=1) - forced[np.arange(len(ours)), ours]
    position = int(np.flatnonzero(prefers > 0)[0])
    row = forced[position]
    top2 = np.sort(row)[-2:]
    best = int(np.argmax(row))
    lines = [f"prompt {prompt!r}: first mismatch at generated position {position}: engine {ours[position]} "
             f"{llama_reference.detokenize(model, [ours[position]])!r}, llama.cpp {best} "
             f"{llama_reference.detokenize(model, [best])!r}; llama.cpp top-2 gap {top2[1] - top2[0]:.4f}, "
             f"engine token {prefers[position]:.4f} below the top (worst in this continuation: "
             f"{prefers.max():.4f} at position {int(np.argmax(prefers))})",
             f"  engine    : {ours}",
             f"  engine text    : {llama_reference.detokenize(model, ours)!r}"]
    if with_continuation:
        ref = llama_reference.greedy(model, prompt_tokens, len(ours))
        lines[2:2] = [f"  llama.cpp : {ref.tokens}"]
        lines.append(f"  llama.cpp text : {llama_reference.detokenize(model, ref.tokens)!r}")
    return "\n".join(lines)


def test_greedy_matches_llama_cpp():
    engine.require_engine()
    model = parity.default_model()
    if model is None:
        pytest.skip("default model missing: run scripts/setup.sh (or set SPECOFFLOAD_DEFAULT_MODEL)")
    assert len(PROMPTS) >= 20
    single = [p for p in PROMPTS if "\n" not in p]
    multi = [p for p in PROMPTS if "\n" in p]
    results = dict(zip(single, engine.run_generate(model, single, N_TOKENS, as_file=True)))
    results.update(zip(multi, engine.run_generate(model, multi, N_TOKENS, as_file=False)))

    mismatches, n_off_argmax = [], 0
    for prompt in PROMPTS:
        result = results[prompt]
        ours, prompt_tokens = [int(t) for t in result["tokens"]], [int(t) for t in result["prompt_tokens"]]
        assert isinstance(result["text"], str)
        assert prompt_tokens, f"engine returned no prompt tokens for {prompt!r}"
        assert len(ours) == N_TOKENS, f"--ignore-eos must give exactly {N_TOKENS} tokens, got {len(ours)} ({prompt!r})"
        # Teacher forcing: llama.cpp's logits before each engine token, fed as greedy decoding feeds them.
        forced = llama_reference.logits(model, prompt_tokens + ours, prefill=len(prompt_tokens))
        forced = forced[len(prompt_tokens) - 1:-1]  # (N_TOKENS, n_vocab)
        prefers = forced.max(axis=1) - forced[np.arange(N_TOKENS), ours]
        n_off_argmax += int(np.count_nonzero(prefers > 0))
        if prefers.any():
            mismatches.append((float(prefers.max()), prompt, prompt_tokens, ours, forced))

    failures = []
    mismatches.sort(key=lambda m: -m[0])  # worst first: those get llama.cpp's full continuation printed
    for rank, (worst, prompt, prompt_tokens, ours, forced) in enumerate(mismatches):
        message = _describe(model, prompt, prompt_tokens, ours, forced, with_continuation=rank < FULL_REPORTS)
        print(message)
        if worst > GREEDY_TIE_GAP:
            failures.append(message)
    print(f"{len(PROMPTS) - len(mismatches)} of {len(PROMPTS)} continuations equal to llama.cpp's; {n_off_argmax} "
          f"of {N_TOKENS * len(PROMPTS)} engine tokens are near-tie picks off llama.cpp's argmax")
    assert not failures, (f"{len(failures)} prompt(s) pick tokens llama.cpp ranks more than {GREEDY_TIE_GAP} "
                          "below its best:\n" + "\n".join(failures))
    assert n_off_argmax <= MAX_OFF_ARGMAX_FRACTION * N_TOKENS * len(PROMPTS), (
        f"{n_off_argmax} near-tie picks: logits are systematically further from llama.cpp's than rounding explains")
