"""RoPE scaling (linear, YaRN, Llama 3 frequency factors) against llama.cpp, and HF config vs GGUF metadata.

Each family announces scaling differently: GGUF keys rope.scaling.{type,factor,original_context_length}, a
rope_freqs.weight tensor for Llama 3.1, or a rope_scaling object in config.json (from which the engine computes
the Llama 3 factors itself). A model with scaling ignored, or YaRN's magnitude correction missed, is off by
0.1-1 here; F32 weights keep llama.cpp's own error to ~4e-6, so the F32 bounds of test_llama_parity apply.
Sequences run to position 60 so that low-frequency dimensions turn noticeably.
"""

from __future__ import annotations

import dataclasses

import pytest

import engine
import llama_reference
import model_factory
import parity
from test_llama_parity import check

SCALED = [
    dataclasses.replace(model_factory.make_spec("llama", "F32"), rope_scaling="linear", rope_factor=4.0),
    dataclasses.replace(model_factory.make_spec("llama", "F32"), rope_scaling="yarn", rope_factor=4.0,
                        rope_orig_context=64),
    dataclasses.replace(model_factory.make_spec("qwen2", "F32"), rope_scaling="yarn", rope_factor=2.0,
                        rope_orig_context=128),
    # note: theta 500000 and a short original context put several wavelengths in each llama3 band.
    dataclasses.replace(model_factory.make_spec("llama", "F32"), rope_scaling="llama3", rope_factor=8.0,
                        rope_orig_context=64, rope_theta=500000.0),
]
SHAPES = [(60, 40), (30, 1), (45, 45)]  # (length, prefill) per sequence of the ragged batch
TWIN_MAX_ERROR = 1e-3  # as test_safetensors_parity


@pytest.mark.parametrize("spec", SCALED, ids=lambda s: s.name)
def test_scaled_rope_matches_llama_cpp(spec):
    engine.require_engine()
    model = model_factory.gguf_path(spec)
    sequences = parity.ragged_batch(spec, SHAPES, seed=7)
    ours = engine.run_logits(model, sequences)
    check(parity.merge(spec.name, [
        parity.compare(f"sequence {i}", o, llama_reference.logits(model, s.tokens, s.prefill))
        for i, (o, s) in enumerate(zip(ours, sequences))]), spec.dtype)


@pytest.mark.parametrize("spec", SCALED, ids=lambda s: s.name)
def test_scaled_rope_hf_config_matches_gguf(spec):
    engine.require_engine()
    sequences = parity.ragged_batch(spec, SHAPES, seed=8)
    from_gguf = engine.run_logits(model_factory.gguf_path(spec), sequences)
    from_hf = engine.run_logits(model_factory.hf_path(spec), sequences)
    comparison = parity.merge(f"{spec.name} HF vs GGUF", [
        parity.compare(f"sequence {i}", hf, gg) for i, (hf, gg) in enumerate(zip(from_hf, from_gguf))])
    print(comparison.describe())
    assert comparison.errors.max() <= TWIN_MAX_ERROR, comparison.describe()


def test_scaling_changes_the_logits():
    """Guards the test itself: the scaled models must differ clearly from their unscaled twins."""
    engine.require_engine()
    for spec in SCALED:
        plain = dataclasses.replace(spec, rope_scaling="", rope_factor=1.0, rope_orig_context=0)
        sequences = parity.ragged_batch(spec, SHAPES[:1], seed=9)
        (scaled,) = engine.run_logits(model_factory.gguf_path(spec), sequences)
        (unscaled,) = engine.run_logits(model_factory.gguf_path(plain), sequences)
        assert parity.compare(spec.name, scaled, unscaled).errors.max() > 0.05, spec.name
