"""Greedy generation with the default model (SmolLM2-135M-Instruct, Q4_1) against llama.cpp's greedy tokens.

The engine generates 64 tokens per prompt (`generate --temp 0 --json --ignore-eos`); llama.cpp is fed the engine's
own `prompt_tokens` (so tokenizer differences cannot hide or cause a mismatch here; tokenizer parity has its own
tests) and continues greedily for 64 tokens. The continuations must be equal.

Two implementations that round differently can pick different tokens where the top two logits are nearly tied,
and after such a step the continuations legitimately diverge. So a mismatch is accepted only when, under
llama.cpp's own logits at that step, the engine's token is within GREEDY_TIE_GAP of the best one; comparison of
that prompt stops there. Such near-tie divergences must stay rare (MAX_TIE_DIVERGENCES). Every mismatch prints
both continuations, the position, and llama.cpp's top-2 gap there.

Calibration (dev/calibrate_greedy.py): an exact f32 NumPy forward pass standing in for the engine diverged from
llama.cpp on 3 of these 25 prompts, all at near ties (llama.cpp logit gap to the NumPy choice <= 0.05); llama.cpp
itself quantizes activations to Q8_1 for the Q4_1 matmuls, which moves logits by ~0.05-0.1 on this model.
"""

from __future__ import annotations

import pytest

import engine
import llama_reference
import parity

N_TOKENS = 64
GREEDY_TIE_GAP = 0.25  # logits: a divergence where llama.cpp prefers its token by less than this is a near tie
MAX_TIE_DIVERGENCES = 6  # of the prompts below (25)

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


def _describe_mismatch(model, prompt, ours, ref, position) -> str:
    gap = ref.top2_gap(position)
    ours_gap = float(ref.step_logits[position].max() - ref.step_logits[position][ours[position]])
    return (f"prompt {prompt!r}: first mismatch at generated position {position}\n"
            f"  engine    : {ours}\n  llama.cpp : {ref.tokens}\n"
            f"  engine text    : {llama_reference.detokenize(model, ours)!r}\n"
            f"  llama.cpp text : {llama_reference.detokenize(model, ref.tokens)!r}\n"
            f"  llama.cpp top-2 logit gap there: {gap:.4f}; it prefers its token over the engine's by {ours_gap:.4f}")


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

    failures, ties = [], []
    for prompt in PROMPTS:
        result = results[prompt]
        ours, prompt_tokens = result["tokens"], result["prompt_tokens"]
        assert isinstance(result["text"], str)
        assert prompt_tokens, f"engine returned no prompt tokens for {prompt!r}"
        assert len(ours) == N_TOKENS, f"--ignore-eos must give exactly {N_TOKENS} tokens, got {len(ours)} ({prompt!r})"
        ref = llama_reference.greedy(model, prompt_tokens, N_TOKENS)
        if ours == ref.tokens:
            continue
        position = next(i for i, (a, b) in enumerate(zip(ours, ref.tokens)) if a != b)
        message = _describe_mismatch(model, prompt, ours, ref, position)
        print(message)
        ours_gap = float(ref.step_logits[position].max() - ref.step_logits[position][ours[position]])
        (ties if ours_gap <= GREEDY_TIE_GAP else failures).append(message)
    assert not failures, f"{len(failures)} prompt(s) diverge where llama.cpp is not near a tie:\n" + "\n".join(failures)
    assert len(ties) <= MAX_TIE_DIVERGENCES, (
        f"{len(ties)} of {len(PROMPTS)} prompts diverge at near ties (at most {MAX_TIE_DIVERGENCES} expected): "
        "logits are systematically further from llama.cpp's than rounding explains\n" + "\n".join(ties))
