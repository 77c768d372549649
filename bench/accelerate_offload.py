#!/usr/bin/env python3
"""Baseline for bench/gpu_offload.py: Hugging Face transformers + accelerate `device_map` offloading.

The same config.json as the engine's dummy target, random bf16 weights, layers that do not fit --gpu-mem kept in
CPU memory and moved to the GPU by accelerate's hooks at every forward. Greedy decoding with a KV cache over a
batch of --rows random prompts; prints one JSON record (decode tokens/s) as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import accelerate
import torch
import transformers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--gpu-mem", default="24G")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--gen", type=int, default=3)
    args = parser.parse_args()

    with open(args.config) as f:
        config = transformers.AutoConfig.for_model(**json.load(f))
    torch.set_default_dtype(torch.bfloat16)
    started = time.time()
    with accelerate.init_empty_weights():
        model = transformers.AutoModelForCausalLM.from_config(config)
    model = model.to_empty(device="cpu")
    # note: uniform_ over 47B bf16 values is slow on the CPU; copying from one random pool moves
    # at memory speed (the values repeat, which does not matter for timing).
    with torch.no_grad():
        pool = torch.empty(64 << 20, dtype=torch.bfloat16).uniform_(-0.03, 0.03)
        offset = 0
        for parameter in model.parameters():
            flat = parameter.view(-1)
            for start in range(0, flat.numel(), pool.numel()):
                n = min(pool.numel(), flat.numel() - start)
                begin = offset % (pool.numel() - n + 1)
                flat[start:start + n].copy_(pool[begin:begin + n])
                offset += 7919
    model.eval()
    print(f"built on the CPU in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    gib = args.gpu_mem.rstrip("G")
    device_map = accelerate.infer_auto_device_map(model, max_memory={0: f"{gib}GiB", "cpu": "200GiB"},
                                                  no_split_module_classes=[type(model.model.layers[0]).__name__])
    model = accelerate.dispatch_model(model, device_map=device_map)
    built = time.time()
    print(f"dispatched in {built - started:.0f} s", file=sys.stderr, flush=True)

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, config.vocab_size, (args.rows, args.prompt_tokens), generator=generator).to("cuda")
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        print(f"prefill done at {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        decode_start = time.time()
        for _ in range(args.gen):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        decode_seconds = time.time() - decode_start
    on_gpu = sum(1 for d in device_map.values() if d == 0)
    print(json.dumps({"name": "transformers + accelerate device_map offload", "transformers": transformers.__version__,
                      "accelerate": accelerate.__version__, "modules_on_gpu": on_gpu,
                      "modules": len(device_map), "build_seconds": round(built - started, 1),
                      "decode_tokens": args.rows * args.gen, "decode_seconds": round(decode_seconds, 3),
                      "decode_tokens_per_second": args.rows * args.gen / decode_seconds}))


if __name__ == "__main__":
    main()
