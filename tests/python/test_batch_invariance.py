"""A sequence's logits do not depend on what else is in the batch, bit for bit.

ARCHITECTURE.md section 5: CPU kernels are batch-invariant (a row's result does not depend on what else is in
the batch), so speculative greedy output equals plain greedy output bit for bit and a scheduler may regroup rows
freely. Here every sequence of a ragged batch of 8 (different lengths and prefill sizes, so rows sit at
different offsets and different steps mix prefill and decode rows) must give exactly the logits it gives alone.

The second test feeds one sequence several ways at once (prefill of 1, 5 and all tokens): the logits of a token
must not depend on how many of its sequence's tokens came in the same step. That is what makes verifying k+1
draft tokens in one pass equal to decoding them one by one.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
import model_factory
import parity

# (length, prefill): single-token decode from the start, whole-sequence prefill, long and short mixtures.
BATCH_SHAPES = [(20, 12), (5, 1), (33, 33), (14, 3), (9, 9), (27, 8), (2, 1), (17, 16)]

# Batching is decided by two things: each weight dtype's matmul kernel and each family's attention/MoE path. Every
# family runs with a float, a 32-block and a K-quant dtype; llama (one of each tying) runs every dtype.
KERNEL_PROBES = ("F32", "Q8_0", "Q4_K")
SPECS = [s for s in model_factory.parity_specs()
         if (s.dtype in KERNEL_PROBES and not (s.arch == "llama" and s.tied))
         or (s.arch == "llama" and s.dtype not in KERNEL_PROBES and (not s.tied or s.dtype in model_factory.LOW_BIT_DTYPES))]


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    position, index = np.argwhere(a != b)[0]
    return (f"first difference at token {position}, logit {index}: {a[position, index]!r} vs "
            f"{b[position, index]!r} (max |diff| {np.abs(a - b).max():.3e})")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_ragged_batch_of_8_equals_each_sequence_alone(spec):
    engine.require_engine()
    model = model_factory.gguf_path(spec)
    sequences = parity.ragged_batch(spec, BATCH_SHAPES, seed=6)
    batched = engine.run_logits(model, sequences)
    mismatches = []
    for i, sequence in enumerate(sequences):
        (alone,) = engine.run_logits(model, [sequence])
        if not np.array_equal(batched[i], alone):
            mismatches.append(f"sequence {i} (len {len(sequence.tokens)}, prefill {sequence.prefill}): "
                              + _first_difference(batched[i], alone))
    assert not mismatches, "batched logits differ from the same sequence alone:\n" + "\n".join(mismatches)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_logits_do_not_depend_on_prefill_split(spec):
    engine.require_engine()
    model = model_factory.gguf_path(spec)
    tokens = parity.draw_tokens(spec, 16, seed=8)
    splits = [1, 5, len(tokens)]
    results = engine.run_logits(model, [parity.Sequence(tokens, p) for p in splits])
    for prefill, logits in zip(splits[1:], results[1:]):
        assert np.array_equal(results[0], logits), (
            f"prefill {prefill} vs token-by-token: " + _first_difference(logits, results[0]))
