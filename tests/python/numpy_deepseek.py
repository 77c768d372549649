"""DeepSeek V2/V3 in NumPy (float32), written from the published model definition (Hugging Face's
modeling_deepseek: latent attention computed the plain way, K and V decompressed per head; YaRN rope on interleaved
pairs; grouped sigmoid routing with a selection bias; shared experts), not from llama.cpp or the engine, which both
run the absorbed form. numpy_forward dispatches here for deepseek2 files and directories.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import gguf
import numpy as np


@dataclasses.dataclass
class Config:
    n_layers: int
    dim: int
    n_heads: int
    rms_eps: float
    vocab_size: int
    q_lora: int
    kv_lora: int
    nope: int
    rope: int
    v: int
    n_dense: int
    n_experts: int
    n_experts_used: int
    n_groups: int
    groups_used: int
    sigmoid: bool
    normalize: bool
    scale: float
    rope_theta: float
    yarn_factor: float = 1.0  # 1: no YaRN
    yarn_orig_context: int = 0
    mscale_all_dim: float = 0.0
    arch: str = "deepseek2"


@dataclasses.dataclass
class Weights:
    config: Config
    embed: np.ndarray
    layers: list[dict[str, np.ndarray]]
    out_norm: np.ndarray
    output: np.ndarray


def _field(reader: gguf.GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def load_gguf(path: Path) -> Weights:
    reader = gguf.GGUFReader(str(path))
    t = {tensor.name: gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
         for tensor in reader.tensors}
    a = "deepseek2."
    rope = _field(reader, a + "rope.dimension_count")
    scaling = _field(reader, a + "rope.scaling.type", "none")
    c = Config(
        n_layers=_field(reader, a + "block_count"), dim=_field(reader, a + "embedding_length"),
        n_heads=_field(reader, a + "attention.head_count"),
        rms_eps=_field(reader, a + "attention.layer_norm_rms_epsilon"), vocab_size=t["token_embd.weight"].shape[0],
        q_lora=_field(reader, a + "attention.q_lora_rank", 0), kv_lora=_field(reader, a + "attention.kv_lora_rank"),
        nope=_field(reader, a + "attention.key_length_mla") - rope, rope=rope,
        v=_field(reader, a + "attention.value_length_mla"), n_dense=_field(reader, a + "leading_dense_block_count", 0),
        n_experts=_field(reader, a + "expert_count"), n_experts_used=_field(reader, a + "expert_used_count"),
        n_groups=_field(reader, a + "expert_group_count", 1), groups_used=_field(reader, a + "expert_group_used_count", 1),
        sigmoid=_field(reader, a + "expert_gating_func", 1) == 2,
        normalize=bool(_field(reader, a + "expert_weights_norm", False)),
        scale=_field(reader, a + "expert_weights_scale", 1.0), rope_theta=_field(reader, a + "rope.freq_base"),
        yarn_factor=_field(reader, a + "rope.scaling.factor", 1.0) if scaling == "yarn" else 1.0,
        yarn_orig_context=_field(reader, a + "rope.scaling.original_context_length", 0),
        mscale_all_dim=_field(reader, a + "rope.scaling.yarn_log_multiplier", 0.0) / 0.1,
    )
    layers = []
    for i in range(c.n_layers):
        p = f"blk.{i}."
        g = lambda name: t.get(p + name)  # noqa: E731
        kv_b = np.concatenate([g("attn_k_b.weight").swapaxes(1, 2), g("attn_v_b.weight")], axis=1).reshape(-1, c.kv_lora)
        layer = {"attn_norm": g("attn_norm.weight"), "q_a": g("attn_q_a.weight"), "q_a_norm": g("attn_q_a_norm.weight"),
                 "q_b": g("attn_q_b.weight") if c.q_lora else g("attn_q.weight"), "kv_a": g("attn_kv_a_mqa.weight"),
                 "kv_a_norm": g("attn_kv_a_norm.weight"), "kv_b": kv_b, "o": g("attn_output.weight"),
                 "ffn_norm": g("ffn_norm.weight"), "gate": g("ffn_gate.weight"), "up": g("ffn_up.weight"),
                 "down": g("ffn_down.weight"), "router": g("ffn_gate_inp.weight"), "bias": g("exp_probs_b.bias"),
                 "gates": g("ffn_gate_exps.weight"), "ups": g("ffn_up_exps.weight"), "downs": g("ffn_down_exps.weight"),
                 "shared_gate": g("ffn_gate_shexp.weight"), "shared_up": g("ffn_up_shexp.weight"),
                 "shared_down": g("ffn_down_shexp.weight")}
        layers.append(layer)
    embed = t["token_embd.weight"]
    return Weights(c, embed, layers, t["output_norm.weight"], t.get("output.weight", embed))


def load_hf(directory: Path) -> Weights:
    from model_factory import read_hf_tensors

    directory = Path(directory)
    j = json.loads((directory / "config.json").read_text())
    t = read_hf_tensors(directory)
    rs = j.get("rope_scaling") or {}
    c = Config(
        n_layers=j["num_hidden_layers"], dim=j["hidden_size"], n_heads=j["num_attention_heads"],
        rms_eps=j["rms_norm_eps"], vocab_size=j["vocab_size"], q_lora=j.get("q_lora_rank") or 0,
        kv_lora=j["kv_lora_rank"], nope=j["qk_nope_head_dim"], rope=j["qk_rope_head_dim"], v=j["v_head_dim"],
        n_dense=j["first_k_dense_replace"], n_experts=j["n_routed_experts"], n_experts_used=j["num_experts_per_tok"],
        n_groups=j.get("n_group", 1) if j.get("topk_method") == "noaux_tc" else 1, groups_used=j.get("topk_group", 1),
        sigmoid=j.get("scoring_func") == "sigmoid", normalize=j.get("norm_topk_prob", False),
        scale=j.get("routed_scaling_factor", 1.0), rope_theta=j["rope_theta"],
        yarn_factor=rs.get("factor", 1.0) if rs.get("type", rs.get("rope_type")) == "yarn" else 1.0,
        yarn_orig_context=rs.get("original_max_position_embeddings", 0), mscale_all_dim=rs.get("mscale_all_dim", 0.0),
    )
    layers = []
    for i in range(c.n_layers):
        p = f"model.layers.{i}."
        g = lambda name: t.get(p + name)  # noqa: E731
        experts = [f"mlp.experts.{e}." for e in range(c.n_experts)]
        moe = i >= c.n_dense
        stack = lambda n: np.stack([g(e + f"{n}_proj.weight") for e in experts]) if moe else None  # noqa: E731
        layers.append({
            "attn_norm": g("input_layernorm.weight"), "q_a": g("self_attn.q_a_proj.weight"),
            "q_a_norm": g("self_attn.q_a_layernorm.weight"),
            "q_b": g("self_attn.q_b_proj.weight") if c.q_lora else g("self_attn.q_proj.weight"),
            "kv_a": g("self_attn.kv_a_proj_with_mqa.weight"), "kv_a_norm": g("self_attn.kv_a_layernorm.weight"),
            "kv_b": g("self_attn.kv_b_proj.weight"), "o": g("self_attn.o_proj.weight"),
            "ffn_norm": g("post_attention_layernorm.weight"), "gate": g("mlp.gate_proj.weight"),
            "up": g("mlp.up_proj.weight"), "down": g("mlp.down_proj.weight"),
            "router": g("mlp.gate.weight") if moe else None, "bias": g("mlp.gate.e_score_correction_bias"),
            "gates": stack("gate"), "ups": stack("up"), "downs": stack("down"),
            "shared_gate": g("mlp.shared_experts.gate_proj.weight"), "shared_up": g("mlp.shared_experts.up_proj.weight"),
            "shared_down": g("mlp.shared_experts.down_proj.weight")})
    embed = t["model.embed_tokens.weight"]
    output = embed if j.get("tie_word_embeddings", False) else t["lm_head.weight"]
    return Weights(c, embed, layers, t["model.norm.weight"], output)


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _inverse_frequencies(c: Config) -> np.ndarray:
    """Rope frequencies of the rope dims; under YaRN, interpolated (1/factor) below the ramp, kept above it."""
    d = c.rope
    extra = c.rope_theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    if c.yarn_factor <= 1.0:
        return extra

    def correction_dim(rotations):
        return d * math.log(c.yarn_orig_context / (rotations * 2 * math.pi)) / (2 * math.log(c.rope_theta))

    low = max(math.floor(correction_dim(32.0)), 0)
    high = min(math.ceil(correction_dim(1.0)), d - 1)
    ramp = np.clip((np.arange(d // 2) - low) / max(high - low, 0.001), 0.0, 1.0)
    keep = 1.0 - ramp  # share of the unscaled frequency
    return extra / c.yarn_factor * (1.0 - keep) + extra * keep


def _rope_pairs(x, positions, inv_freq):
    """Rotate interleaved pairs (2i, 2i+1) of x (n, heads, d)."""
    angle = positions[:, None].astype(np.float64) * inv_freq[None, :]
    cos, sin = np.cos(angle)[:, None, :].astype(np.float32), np.sin(angle)[:, None, :].astype(np.float32)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def _attention(L, c: Config, x, positions, cache, il):
    n, H = x.shape[0], c.n_heads
    q = _rms(x @ L["q_a"].T, L["q_a_norm"], c.rms_eps) @ L["q_b"].T if c.q_lora else x @ L["q_b"].T
    q = q.reshape(n, H, c.nope + c.rope)
    ckv = x @ L["kv_a"].T
    latent, k_pe = _rms(ckv[:, :c.kv_lora], L["kv_a_norm"], c.rms_eps), ckv[:, c.kv_lora:]
    kv = (latent @ L["kv_b"].T).reshape(n, H, c.nope + c.v)
    inv_freq = _inverse_frequencies(c)
    q_pe = _rope_pairs(q[..., c.nope:], positions, inv_freq)
    k_pe = _rope_pairs(k_pe[:, None, :], positions, inv_freq)
    k = np.concatenate([kv[..., :c.nope], np.broadcast_to(k_pe, (n, H, c.rope))], axis=-1)
    q = np.concatenate([q[..., :c.nope], q_pe], axis=-1)
    keys, values = cache.append(il, k, kv[..., c.nope:])
    mscale = 1.0 + 0.1 * c.mscale_all_dim * math.log(c.yarn_factor) if c.yarn_factor > 1.0 else 1.0
    scale = mscale * mscale / math.sqrt(c.nope + c.rope)
    scores = np.einsum("qhd,khd->hqk", q, keys) * np.float32(scale)
    visible = np.arange(keys.shape[0])[None, None, :] <= positions[None, :, None]
    scores = np.where(visible, scores, -np.inf)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", probs, values).reshape(n, H * c.v) @ L["o"].T


def _ffn(L, c: Config, x, router_margins):
    dense = lambda g, u, d: (_silu(x @ g.T) * (x @ u.T)) @ d.T  # noqa: E731
    if L["router"] is None:
        return dense(L["gate"], L["up"], L["down"])
    logits = x @ L["router"].T
    scores = 1.0 / (1.0 + np.exp(-logits)) if c.sigmoid else np.exp(logits - logits.max(-1, keepdims=True))
    if not c.sigmoid:
        scores /= scores.sum(-1, keepdims=True)
    choice = scores + (L["bias"] if L["bias"] is not None else 0.0)
    out = np.zeros_like(x)
    margins = np.zeros(x.shape[0], dtype=np.float32)
    size = c.n_experts // c.n_groups
    for row in range(x.shape[0]):
        pick = choice[row].copy()
        margin = np.inf
        if c.n_groups > 1:  # a group's worth: the sum of its two best
            groups = np.sort(pick.reshape(c.n_groups, size), axis=-1)[:, -2:].sum(-1)
            ranked = np.argsort(-groups, kind="stable")
            margin = groups[ranked[c.groups_used - 1]] - groups[ranked[c.groups_used]]
            for g in ranked[c.groups_used:]:
                pick[g * size:(g + 1) * size] = -np.inf
        chosen = np.argsort(-pick, kind="stable")[: c.n_experts_used]
        # note: sigmoid choices are measured as 2x the score margin: a sigmoid moves at most 1/4 per logit, but
        # these choices sit behind more quantized steps than a Mixtral router (the latent attention's four
        # matmuls, a group sum), and 4x let llama.cpp's activation rounding flip a choice now and then. Softmax
        # choices (no bias, no groups) follow the logits, measured as Mixtral's are.
        rest = np.sort(pick if c.sigmoid else logits[row])[::-1]
        margins[row] = min(margin, rest[c.n_experts_used - 1] - rest[c.n_experts_used]) * (2.0 if c.sigmoid else 1.0)
        w = scores[row, chosen]
        if c.normalize:
            w = w / w.sum()
        w = w * np.float32(c.scale)
        for e, weight in zip(chosen, w):
            out[row] += weight * (L["downs"][e] @ (_silu(L["gates"][e] @ x[row]) * (L["ups"][e] @ x[row])))
    if router_margins is not None:
        router_margins.append(margins)
    if L["shared_gate"] is not None:
        out = out + dense(L["shared_gate"], L["shared_up"], L["shared_down"])
    return out


def forward(weights: Weights, tokens, cache, router_margins: list | None = None) -> np.ndarray:
    c = weights.config
    tokens = np.asarray(tokens, dtype=np.int64)
    positions = np.arange(cache.length, cache.length + len(tokens))
    x = weights.embed[tokens].astype(np.float32)
    for il, L in enumerate(weights.layers):
        x = x + _attention(L, c, _rms(x, L["attn_norm"], c.rms_eps), positions, cache, il)
        x = x + _ffn(L, c, _rms(x, L["ffn_norm"], c.rms_eps), router_margins)
    cache.length += len(tokens)
    return (_rms(x, weights.out_norm, c.rms_eps) @ weights.output.T).astype(np.float32)
