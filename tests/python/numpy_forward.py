"""An independent forward pass in NumPy (float32 math): llama, qwen2, mixtral, qwen3, qwen3moe, gemma3, gpt-oss.

Why: llama.cpp and the engine could share a misunderstanding of a generated file (a wrong rope layout, a swapped
gate/up, experts in the wrong order). This pass is written from the models' published definitions, not from
either implementation, and reads both twins: a GGUF file (dequantized with `gguf.quants.dequantize`, llama rope on
adjacent pairs for GGUF "llama", NeoX rope for "qwen2") and an HF directory (rotate_half rope, HF names). When it
agrees with llama.cpp, the factory's models mean what we think they mean.

Also used on the real default model (SmolLM2-135M, Q4_1) to calibrate the greedy test: how often does an
unquantized-activation f32 forward pass pick a different greedy token than llama.cpp?
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
    arch: str  # "llama", "qwen2" or "mixtral"
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    rope_theta: float
    rms_eps: float
    vocab_size: int
    n_experts: int = 0
    n_experts_used: int = 0
    rope_interleaved: bool = False  # True: rotate pairs (2i, 2i+1) (GGUF llama); False: (i, i + head_dim/2)
    moe_normalize: bool = True  # renormalize the chosen experts' probabilities
    gemma: bool = False  # sandwich norms, GELU(tanh), embeddings * sqrt(dim)
    attention_scale: float = 0.0  # 0: 1/sqrt(head_dim)
    sliding_window: int = 0
    sliding_layers: tuple[bool, ...] = ()
    sliding_rope_theta: float = 10000.0
    gpt_oss: bool = False  # attention sinks, biases, clamped SwiGLU experts


@dataclasses.dataclass
class Layer:
    attn_norm: np.ndarray  # (dim,)
    wq: np.ndarray  # (n_heads*head_dim, dim)
    wk: np.ndarray  # (n_kv_heads*head_dim, dim)
    wv: np.ndarray  # (n_kv_heads*head_dim, dim)
    wo: np.ndarray  # (dim, n_heads*head_dim)
    bq: np.ndarray | None  # (n_heads*head_dim,) qwen2 only
    bk: np.ndarray | None
    bv: np.ndarray | None
    ffn_norm: np.ndarray  # (dim,)
    w_gate: np.ndarray  # (ffn, dim), or (n_experts, ffn, dim) for MoE
    w_up: np.ndarray  # same shape as w_gate
    w_down: np.ndarray  # (dim, ffn), or (n_experts, dim, ffn)
    router: np.ndarray | None  # (n_experts, dim)
    q_norm: np.ndarray | None = None  # (head_dim,) qwen3 / gemma3
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None  # (dim,) gemma3
    post_ffn_norm: np.ndarray | None = None
    bo: np.ndarray | None = None  # (dim,) gpt-oss
    sinks: np.ndarray | None = None  # (n_heads,)
    router_b: np.ndarray | None = None  # (n_experts,)
    gate_b: np.ndarray | None = None  # (n_experts, ffn)
    up_b: np.ndarray | None = None
    down_b: np.ndarray | None = None  # (n_experts, dim)


@dataclasses.dataclass
class Weights:
    config: Config
    embed: np.ndarray  # (vocab, dim)
    layers: list[Layer]
    out_norm: np.ndarray  # (dim,)
    output: np.ndarray  # (vocab, dim); the embedding itself when tied


def _field(reader: gguf.GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def load_gguf(path: Path) -> Weights:
    """Dequantize every tensor of a GGUF file to float32."""
    reader = gguf.GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    if arch == "deepseek2":
        import numpy_deepseek
        return numpy_deepseek.load_gguf(path)
    assert arch in ("llama", "qwen2", "qwen3", "qwen3moe", "gemma3", "gpt-oss"), f"numpy_forward cannot read {arch}"
    t = {tensor.name: gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
         for tensor in reader.tensors}
    n_experts = _field(reader, f"{arch}.expert_count", 0)
    dim = _field(reader, f"{arch}.embedding_length")
    n_heads = _field(reader, f"{arch}.attention.head_count")
    n_layers = _field(reader, f"{arch}.block_count")
    head_dim = _field(reader, f"{arch}.attention.key_length", dim // n_heads)
    window = _field(reader, f"{arch}.attention.sliding_window", 0) if arch in ("gemma3", "gpt-oss") else 0
    period = 2 if arch == "gpt-oss" else 6
    config = Config(
        arch="mixtral" if n_experts and arch == "llama" else arch,
        n_layers=n_layers,
        dim=dim,
        n_heads=n_heads,
        n_kv_heads=_field(reader, f"{arch}.attention.head_count_kv", n_heads),
        head_dim=head_dim,
        rope_theta=_field(reader, f"{arch}.rope.freq_base", 10000.0),
        rms_eps=_field(reader, f"{arch}.attention.layer_norm_rms_epsilon"),
        vocab_size=t["token_embd.weight"].shape[0],
        n_experts=n_experts,
        n_experts_used=_field(reader, f"{arch}.expert_used_count", 0),
        rope_interleaved=(arch == "llama"),
        gemma=(arch == "gemma3"),
        sliding_window=window,
        # llama.cpp's Gemma 3: every sixth layer global, sliding layers' rope base 10000; gpt-oss: every second,
        # one rope for all.
        sliding_layers=tuple(window > 0 and i % period < period - 1 for i in range(n_layers)),
        sliding_rope_theta=_field(reader, f"{arch}.rope.freq_base", 10000.0) if arch == "gpt-oss" else 10000.0,
        gpt_oss=(arch == "gpt-oss"),
    )
    layers = []
    for i in range(config.n_layers):
        p = f"blk.{i}."
        moe = n_experts > 0
        layers.append(Layer(
            q_norm=t.get(p + "attn_q_norm.weight"), k_norm=t.get(p + "attn_k_norm.weight"),
            post_attn_norm=None if arch == "gpt-oss" else t.get(p + "post_attention_norm.weight"),
            post_ffn_norm=t.get(p + "post_ffw_norm.weight"),
            bo=t.get(p + "attn_output.bias"), sinks=t.get(p + "attn_sinks.weight"), router_b=t.get(p + "ffn_gate_inp.bias"),
            gate_b=t.get(p + "ffn_gate_exps.bias"), up_b=t.get(p + "ffn_up_exps.bias"),
            down_b=t.get(p + "ffn_down_exps.bias"),
            attn_norm=t[p + "attn_norm.weight"],
            wq=t[p + "attn_q.weight"], wk=t[p + "attn_k.weight"], wv=t[p + "attn_v.weight"],
            wo=t[p + "attn_output.weight"],
            bq=t.get(p + "attn_q.bias"), bk=t.get(p + "attn_k.bias"), bv=t.get(p + "attn_v.bias"),
            ffn_norm=t[p + ("post_attention_norm.weight" if arch == "gpt-oss" else "ffn_norm.weight")],
            w_gate=t[p + ("ffn_gate_exps.weight" if moe else "ffn_gate.weight")],
            w_up=t[p + ("ffn_up_exps.weight" if moe else "ffn_up.weight")],
            w_down=t[p + ("ffn_down_exps.weight" if moe else "ffn_down.weight")],
            router=t.get(p + "ffn_gate_inp.weight"),
        ))
    embed = t["token_embd.weight"]
    return Weights(config, embed, layers, t["output_norm.weight"], t.get("output.weight", embed))


def load_hf(directory: Path) -> Weights:
    """Read an HF directory written by model_factory (config.json + safetensors, single or sharded)."""
    from model_factory import read_hf_tensors

    directory = Path(directory)
    c = json.loads((directory / "config.json").read_text())
    if c["model_type"] in ("deepseek_v2", "deepseek_v3"):
        import numpy_deepseek
        return numpy_deepseek.load_hf(directory)
    t = read_hf_tensors(directory)
    gemma = c["model_type"] == "gemma3_text"
    if gemma:  # HF Gemma norms scale by 1 + w
        t = {name: (value + np.float32(1.0) if name.endswith("norm.weight") else value) for name, value in t.items()}
    head_dim = c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])
    gpt_oss = c["model_type"] == "gpt_oss"
    config = Config(
        arch=c["model_type"], n_layers=c["num_hidden_layers"], dim=c["hidden_size"],
        n_heads=c["num_attention_heads"], n_kv_heads=c["num_key_value_heads"],
        head_dim=head_dim,
        rope_theta=c["rope_theta"], rms_eps=c["rms_norm_eps"], vocab_size=c["vocab_size"],
        n_experts=c.get("num_local_experts", c.get("num_experts", 0)), n_experts_used=c.get("num_experts_per_tok", 0),
        rope_interleaved=False, moe_normalize=c.get("norm_topk_prob", True), gemma=gemma,
        attention_scale=c.get("query_pre_attn_scalar", head_dim) ** -0.5 if gemma else 0.0,
        sliding_window=c.get("sliding_window", 0) if gemma or gpt_oss else 0,
        sliding_layers=tuple(kind == "sliding_attention" for kind in c.get("layer_types", [])),
        sliding_rope_theta=c["rope_theta"] if gpt_oss else c.get("rope_local_base_freq", 10000.0),
        gpt_oss=gpt_oss,
    )
    layers = []
    for i in range(config.n_layers):
        p = f"model.layers.{i}."
        extra = {}
        if gpt_oss:  # MXFP4 blocks and scales, gate and up rows (and biases) interleaved
            e = p + "mlp.experts."
            gate_up = _mxfp4_hf(t[e + "gate_up_proj_blocks"], t[e + "gate_up_proj_scales"])
            gate, up = gate_up[:, 0::2], gate_up[:, 1::2]
            down = _mxfp4_hf(t[e + "down_proj_blocks"], t[e + "down_proj_scales"])
            router = t[p + "mlp.router.weight"]
            bias = t[e + "gate_up_proj_bias"]
            extra = dict(bo=t[p + "self_attn.o_proj.bias"], sinks=t[p + "self_attn.sinks"],
                         router_b=t[p + "mlp.router.bias"], gate_b=bias[:, 0::2], up_b=bias[:, 1::2],
                         down_b=t[e + "down_proj_bias"])
        elif config.n_experts and c["model_type"] == "qwen3_moe":
            e = [f"{p}mlp.experts.{k}." for k in range(config.n_experts)]
            gate, up, down = (np.stack([t[x + f"{n}_proj.weight"] for x in e]) for n in ("gate", "up", "down"))
            router = t[p + "mlp.gate.weight"]
        elif config.n_experts:
            e = [f"{p}block_sparse_moe.experts.{k}." for k in range(config.n_experts)]
            gate = np.stack([t[x + "w1.weight"] for x in e])
            up = np.stack([t[x + "w3.weight"] for x in e])
            down = np.stack([t[x + "w2.weight"] for x in e])
            router = t[p + "block_sparse_moe.gate.weight"]
        else:
            gate, up, down = (t[p + f"mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
            router = None
        layers.append(Layer(
            attn_norm=t[p + "input_layernorm.weight"],
            wq=t[p + "self_attn.q_proj.weight"], wk=t[p + "self_attn.k_proj.weight"],
            wv=t[p + "self_attn.v_proj.weight"], wo=t[p + "self_attn.o_proj.weight"],
            bq=t.get(p + "self_attn.q_proj.bias"), bk=t.get(p + "self_attn.k_proj.bias"),
            bv=t.get(p + "self_attn.v_proj.bias"),
            ffn_norm=t[p + ("pre_feedforward_layernorm.weight" if gemma else "post_attention_layernorm.weight")],
            w_gate=gate, w_up=up, w_down=down, router=router,
            q_norm=t.get(p + "self_attn.q_norm.weight"), k_norm=t.get(p + "self_attn.k_norm.weight"),
            post_attn_norm=t.get(p + "post_attention_layernorm.weight") if gemma else None,
            post_ffn_norm=t.get(p + "post_feedforward_layernorm.weight"), **extra,
        ))
    embed = t["model.embed_tokens.weight"]
    output = embed if c.get("tie_word_embeddings", gemma) else t["lm_head.weight"]
    return Weights(config, embed, layers, t["model.norm.weight"], output)


def _mxfp4_hf(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32 (E, rows, cols) of gpt-oss's MXFP4 blocks (E, rows, cols/32, 16; byte j: elements 2j low, 2j+1
    high) and E8M0 scales, through the gguf package's MXFP4 decoder (GGUF: element i low, i + 16 high)."""
    elements = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
    qs = (elements[..., :16] | (elements[..., 16:] << 4)).astype(np.uint8)
    raw = np.concatenate([scales[..., None].astype(np.uint8), qs], axis=-1)  # (E, rows, nb, 17)
    raw = raw.reshape(*raw.shape[:2], -1)
    return gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.MXFP4).astype(np.float32)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight, per row."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x: np.ndarray, positions: np.ndarray, theta: float, interleaved: bool) -> np.ndarray:
    """Rotary embedding of x (n_tokens, n_heads, head_dim) at `positions` (n_tokens,).
    Frequency i (0 <= i < head_dim/2) is theta^(-2i/head_dim); it rotates dims (2i, 2i+1) when interleaved,
    else (i, i + head_dim/2)."""
    hd = x.shape[-1]
    freq = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # (hd/2,)
    angle = positions[:, None].astype(np.float64) * freq[None, :]  # (n_tokens, hd/2)
    cos = np.cos(angle)[:, None, :].astype(np.float32)
    sin = np.sin(angle)[:, None, :].astype(np.float32)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x * x * x)))


def _activation(c: Config, x: np.ndarray) -> np.ndarray:
    return gelu_tanh(x) if c.gemma else silu(x)


def swiglu_clamped(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """gpt-oss: gate clamped above at 7, up to [-7, 7]; gate * sigmoid(1.702 gate) * (up + 1)."""
    g = np.minimum(gate, np.float32(7.0))
    u = np.clip(up, np.float32(-7.0), np.float32(7.0))
    return g / (np.float32(1.0) + np.exp(np.float32(-1.702) * g)) * (u + np.float32(1.0))


class KVCache:
    """Per-layer keys and values of one sequence: lists of (n_tokens, n_kv_heads, head_dim) arrays.
    Arrays are never modified in place, so `copy()` (new lists, shared arrays) is a cheap branch point."""

    def __init__(self, n_layers: int):
        self.keys: list[np.ndarray | None] = [None] * n_layers
        self.values: list[np.ndarray | None] = [None] * n_layers
        self.length = 0

    def copy(self) -> "KVCache":
        other = KVCache(0)
        other.keys, other.values, other.length = list(self.keys), list(self.values), self.length
        return other

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = np.concatenate([self.keys[layer], k])
            self.values[layer] = np.concatenate([self.values[layer], v])
        return self.keys[layer], self.values[layer]


def _attention(layer: Layer, c: Config, x: np.ndarray, positions: np.ndarray, cache: KVCache, il: int):
    n = x.shape[0]
    q = x @ layer.wq.T
    k = x @ layer.wk.T
    v = x @ layer.wv.T
    if layer.bq is not None:
        q, k, v = q + layer.bq, k + layer.bk, v + layer.bv
    q = q.reshape(n, c.n_heads, c.head_dim)
    k = k.reshape(n, c.n_kv_heads, c.head_dim)
    if layer.q_norm is not None:  # each head normed on its own
        q, k = rms_norm(q, layer.q_norm, c.rms_eps), rms_norm(k, layer.k_norm, c.rms_eps)
    slides = il < len(c.sliding_layers) and c.sliding_layers[il]
    theta = c.sliding_rope_theta if slides else c.rope_theta
    q = rope(q, positions, theta, c.rope_interleaved)
    k = rope(k, positions, theta, c.rope_interleaved)
    keys, values = cache.append(il, k, v.reshape(n, c.n_kv_heads, c.head_dim))  # (kv_len, n_kv_heads, hd)
    group = c.n_heads // c.n_kv_heads
    keys = np.repeat(keys, group, axis=1)  # query head h reads KV head h // group
    values = np.repeat(values, group, axis=1)
    scale = c.attention_scale or 1.0 / math.sqrt(c.head_dim)
    scores = np.einsum("qhd,khd->hqk", q, keys) * np.float32(scale)  # (n_heads, n, kv_len)
    kv_pos = np.arange(keys.shape[0])
    visible = kv_pos[None, None, :] <= positions[None, :, None]
    if slides:  # a sliding layer's token sees the last `sliding_window` positions, itself included
        visible &= kv_pos[None, None, :] > positions[None, :, None] - c.sliding_window
    scores = np.where(visible, scores, -np.inf)
    if layer.sinks is not None:  # one more logit per head, with no value
        sink = np.broadcast_to(layer.sinks[:, None, None], (c.n_heads, n, 1)).astype(np.float32)
        scores = np.concatenate([scores, sink], axis=-1)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs = scores / scores.sum(axis=-1, keepdims=True)
    if layer.sinks is not None:
        probs = probs[..., :-1]
    out = np.einsum("hqk,khd->qhd", probs, values).reshape(n, c.n_heads * c.head_dim)
    out = out @ layer.wo.T
    return out if layer.bo is None else out + layer.bo


def _ffn(layer: Layer, c: Config, x: np.ndarray, router_margins: list | None) -> np.ndarray:
    if layer.router is None:
        return (_activation(c, x @ layer.w_gate.T) * (x @ layer.w_up.T)) @ layer.w_down.T
    # Mixtral: softmax over all experts, keep the top n_experts_used, renormalize their weights to sum to 1.
    logits = x @ layer.router.T  # (n, n_experts)
    if layer.router_b is not None:
        logits = logits + layer.router_b
    if router_margins is not None:
        ranked = -np.sort(-logits, axis=-1)
        router_margins.append(ranked[:, c.n_experts_used - 1] - ranked[:, c.n_experts_used])  # (n,)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.zeros_like(x)
    for row in range(x.shape[0]):
        chosen = np.argsort(-probs[row], kind="stable")[: c.n_experts_used]
        weights = probs[row, chosen] / probs[row, chosen].sum() if c.moe_normalize else probs[row, chosen]
        for e, w in zip(chosen, weights):
            if c.gpt_oss:
                h = swiglu_clamped(layer.w_gate[e] @ x[row] + layer.gate_b[e], layer.w_up[e] @ x[row] + layer.up_b[e])
                out[row] += w * (layer.w_down[e] @ h + layer.down_b[e])
            else:
                h = silu(layer.w_gate[e] @ x[row]) * (layer.w_up[e] @ x[row])
                out[row] += w * (layer.w_down[e] @ h)
    return out


def forward(weights: Weights, tokens, cache: KVCache | None = None, router_margins: list | None = None) -> np.ndarray:
    """Logits (n_tokens, vocab) for `tokens` appended to `cache` (a new, empty cache when None).

    note: float32 throughout; a float64 NumPy scalar anywhere (np.sqrt of an int, say) would silently promote
    every later array to float64 under NumPy 2's rules, so scalars here are Python floats.

    For MoE models, `router_margins` (when given) receives one (n_tokens,) array per layer: the router logit of
    the last chosen expert minus that of the best expert left out. A small margin means the expert choice is a
    near tie that rounding noise in any implementation may flip."""
    c = weights.config
    cache = cache or KVCache(c.n_layers)
    if c.arch == "deepseek2":
        import numpy_deepseek
        return numpy_deepseek.forward(weights, tokens, cache, router_margins)
    tokens = np.asarray(tokens, dtype=np.int64)
    positions = np.arange(cache.length, cache.length + len(tokens))
    x = weights.embed[tokens].astype(np.float32)
    if c.gemma:
        x = x * np.float32(math.sqrt(c.dim))

    def post(norm, y):  # Gemma norms each block's output before the residual add
        return y if norm is None else rms_norm(y, norm, c.rms_eps)

    for il, layer in enumerate(weights.layers):
        x = x + post(layer.post_attn_norm,
                     _attention(layer, c, rms_norm(x, layer.attn_norm, c.rms_eps), positions, cache, il))
        x = x + post(layer.post_ffn_norm, _ffn(layer, c, rms_norm(x, layer.ffn_norm, c.rms_eps), router_margins))
    cache.length += len(tokens)
    logits = rms_norm(x, weights.out_norm, c.rms_eps) @ weights.output.T
    assert logits.dtype == np.float32, logits.dtype
    return logits


def logits(weights: Weights, tokens, prefill: int | None = None) -> np.ndarray:
    """Logits after every token: the first `prefill` tokens in one step, then one token per step (all at once
    when `prefill` is None). Mathematically the split changes nothing; it is here to mirror the engine's feeding."""
    cache = KVCache(weights.config.n_layers)
    prefill = len(tokens) if prefill is None else prefill
    parts = [forward(weights, tokens[:prefill], cache)]
    parts += [forward(weights, [t], cache) for t in tokens[prefill:]]
    return np.concatenate(parts)


def greedy(weights: Weights, prompt_tokens, n: int) -> list[int]:
    """Greedy continuation of exactly n tokens (EOS does not stop it)."""
    cache = KVCache(weights.config.n_layers)
    last = forward(weights, prompt_tokens, cache)[-1]
    out = [int(np.argmax(last))]
    while len(out) < n:
        out.append(int(np.argmax(forward(weights, [out[-1]], cache)[-1])))
    return out[:n]
