"""Shared pieces of the parity tests: test inputs, the error metric, and readable failure reports.

Why a metric normalized per position: logits of different positions and models have different scales; dividing
the largest absolute difference by the largest absolute reference logit gives one number per position that means
the same thing for every model ("the worst logit is off by this fraction of the logit range").
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

import model_factory
import numpy_forward

# Below this router-logit margin (last chosen expert vs best unchosen, in the f32 NumPy forward pass), an expert
# choice is a near tie that activation rounding can flip: llama.cpp quantizes activations for quantized weights
# (about 1% noise on router logits of std ~2), and a flipped expert changes that token's logits by 10-70%.
# Inputs for MoE models are drawn so that every routing decision clears this margin; see `draw_tokens`.
MIN_ROUTER_MARGIN = 0.25


@dataclasses.dataclass(frozen=True)
class Sequence:
    tokens: tuple[int, ...]
    prefill: int  # tokens fed in the first step; the rest one per step

    def as_request(self) -> dict:
        return {"tokens": list(self.tokens), "prefill": self.prefill}


@lru_cache(maxsize=None)
def numpy_weights(spec: model_factory.ModelSpec) -> numpy_forward.Weights:
    return numpy_forward.load_gguf(model_factory.gguf_path(spec))


def draw_tokens(spec: model_factory.ModelSpec, length: int, seed: int) -> tuple[int, ...]:
    """`length` random token ids (specials included: any id is a valid input to the logits path).

    For MoE models each token is drawn until all of its routing decisions, computed by the independent NumPy
    pass, have a margin >= MIN_ROUTER_MARGIN. Earlier tokens' routing does not depend on later ones (causal),
    so the sequence is built one token at a time. This keeps the comparison about the engine's arithmetic, not
    about which side of a coin-flip tie two implementations land on."""
    rng = np.random.default_rng([seed, length, spec.vocab_size])
    if not spec.n_experts:
        return tuple(int(t) for t in rng.integers(0, spec.vocab_size, length))
    weights = numpy_weights(spec)
    cache = numpy_forward.KVCache(weights.config.n_layers)
    tokens: list[int] = []
    for _ in range(length):
        for attempt in range(200):
            candidate = int(rng.integers(0, spec.vocab_size))
            trial = cache.copy()
            margins: list[np.ndarray] = []
            numpy_forward.forward(weights, [candidate], trial, router_margins=margins)
            if min(float(m.min()) for m in margins) >= MIN_ROUTER_MARGIN:
                break
        else:
            raise AssertionError(f"{spec.name}: no token with router margin >= {MIN_ROUTER_MARGIN} in 200 tries")
        tokens.append(candidate)
        cache = trial
    return tuple(tokens)


def ragged_batch(spec: model_factory.ModelSpec, shapes: list[tuple[int, int]], seed: int) -> list[Sequence]:
    """One Sequence per (length, prefill) in `shapes`, each with its own tokens."""
    return [Sequence(draw_tokens(spec, length, seed * 1000 + i), prefill)
            for i, (length, prefill) in enumerate(shapes)]


def normalized_max_error(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per position (row): max |ours - ref| / max |ref|."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return np.abs(ours.astype(np.float64) - ref).max(axis=-1) / np.abs(ref).max(axis=-1)


@dataclasses.dataclass
class Comparison:
    label: str
    errors: np.ndarray  # (n_positions,) normalized max error
    argmax_ours: np.ndarray  # (n_positions,)
    argmax_ref: np.ndarray
    ref_gaps: np.ndarray  # (n_positions,) reference top-1 minus top-2 logit
    ref_scale: np.ndarray  # (n_positions,) max |reference logit|

    @property
    def argmax_agreement(self) -> float:
        return float(np.mean(self.argmax_ours == self.argmax_ref))

    def argmax_disagreements_beyond_tie(self, tie: float) -> np.ndarray:
        """Positions whose argmax differs although the reference's top-2 gap exceeds tie * max|ref|.

        note: a max-error bound e alone already implies that a disagreement needs a gap <= 2e * max|ref|; `tie`
        is meant to be the typical (mean) error, several times smaller, so this catches errors concentrated on
        the top logits that the max bound lets through."""
        return np.flatnonzero((self.argmax_ours != self.argmax_ref) & (self.ref_gaps > tie * self.ref_scale))

    def describe(self) -> str:
        worst = int(np.argmax(self.errors))
        lines = [f"{self.label}: max normalized error {self.errors.max():.3e} at position {worst}, "
                 f"mean {self.errors.mean():.3e}, argmax agreement {self.argmax_agreement:.3f}"]
        for i in np.flatnonzero(self.argmax_ours != self.argmax_ref)[:8]:
            lines.append(f"  position {i}: argmax ours {self.argmax_ours[i]} vs reference {self.argmax_ref[i]} "
                         f"(reference top-2 gap {self.ref_gaps[i]:.4f} = {self.ref_gaps[i] / self.ref_scale[i]:.2e}"
                         f" of max|ref|, error {self.errors[i]:.3e})")
        return "\n".join(lines)


def compare(label: str, ours: np.ndarray, ref: np.ndarray) -> Comparison:
    top2 = np.sort(ref, axis=-1)[:, -2:]
    return Comparison(label, normalized_max_error(ours, ref), ours.argmax(axis=-1), ref.argmax(axis=-1),
                      top2[:, 1] - top2[:, 0], np.abs(ref).max(axis=-1))


def merge(label: str, comparisons: list[Comparison]) -> Comparison:
    """One Comparison over all positions of several (for agreement rates over a whole test)."""
    cat = lambda field: np.concatenate([getattr(c, field) for c in comparisons])  # noqa: E731
    return Comparison(label, cat("errors"), cat("argmax_ours"), cat("argmax_ref"), cat("ref_gaps"),
                      cat("ref_scale"))


def default_model() -> Path | None:
    """The default model (SmolLM2-135M-Instruct Q4_1), from SPECOFFLOAD_DEFAULT_MODEL or the setup cache."""
    import os

    env = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    path = Path(env) if env else Path.home() / ".cache/specoffload/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None
