#!/usr/bin/env python3
"""Rows per pass with the target's KV cache on the device or in host memory, on the CPU backend (issue 16).

The target is the default model at F16 (bench/make_target_model.py, 271 MB), its weights streamed through a device
budget of 1/4.5 of it over a simulated link slow enough that a pass's copy takes several times its compute, as
beside a GPU. The simulated device (--gpu-mem) holds the weights' share, the activations and, with --kv-cache
device, the KV cache: past some rows that cache no longer fits and the engine refuses the run up front. With
--kv-cache host the cache lives in host memory, host threads run attention against it, and q, k, v and the
attention output cross the link each layer; rows keep scaling.

Each configuration runs `rows` HumanEval prompts (cycled) at --max-rows rows, no speculation, greedy, a fixed
number of tokens. A record gives the steady decode tokens/s (passes that carried every row and no prompt), the
prefill-included tokens/s, the bound rows * BW / W_streamed of those passes, per steady pass the copy engine's
busy time, the computing and the waits for the activations' trips (and copy / compute), the KV bytes and the
device memory's peak. Host and device outputs are compared where both ran.

    python3 bench/host_kv_cpu.py [--rows 32,64,128,256,512] [--link-gbps 0.025] [--gpu-mem 600M] [--out FILE]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import offload_cpu  # noqa: E402


def steady(stats: dict, rows: int) -> list[dict]:
    """Decode passes that carried every row: the steady state the bound is for."""
    return [p for p in stats["pass_records"] if p["prefill_tokens"] == 0 and p["rows"] == rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="32,64,128,256,512")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--link-gbps", type=float, default=0.025)
    parser.add_argument("--gpu-mem", default="600M", help="the simulated device's memory")
    parser.add_argument("--budget-ratio", type=float, default=4.5, help="model bytes over the weights' device budget")
    parser.add_argument("--step-tokens", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    target = offload_cpu.target_model()
    prompts = harness.code_prompts(164)
    base = ["-m", target, "--device-mem", offload_cpu.device_budget(target, args.budget_ratio), "--gpu-mem",
            args.gpu_mem, "--sim-link-gbps", str(args.link_gbps), "--step-tokens", str(args.step_tokens),
            "--kv-page-tokens", "64"]
    records, outputs = [], {}
    for rows in [int(r) for r in args.rows.split(",")]:
        for placement in ("device", "host"):
            flags = base + ["--max-rows", str(rows), "--kv-cache", placement]
            batch = (prompts * (rows // len(prompts) + 1))[:rows]
            result = harness.generate(batch, False, flags, args.tokens, args.threads, must_succeed=False)
            fields = dict(harness.common_fields(), bench="host_kv_cpu", kv_cache=placement, rows=rows,
                          link_gbps=args.link_gbps, gpu_mem=args.gpu_mem)
            if result is None or isinstance(result, str):
                reason = (result or "").strip().splitlines()[-1:] or ["?"]
                records.append({**fields, "fits": False, "error": reason[0]})
                print(json.dumps(records[-1]), flush=True)
                continue
            tokens, stats, _ = result
            outputs[placement, rows] = tokens
            full = steady(stats, rows)
            wall = sum(p["seconds"] for p in full)
            transfers = sum(p["activation_transfer_seconds"] for p in full)
            compute = sum(p["compute_seconds"] for p in full) - transfers  # the computing alone
            copy = sum(p["copy_busy_seconds"] for p in full)
            streamed = full[0]["streamed_bytes"] if full else 0
            per_pass = max(1, len(full))
            record = harness.record(stats, flags, **fields)
            record.update({
                "fits": True,
                "steady_passes": len(full),
                "steady_decode_tokens_per_second": sum(p["committed"] for p in full) / wall if wall else 0.0,
                "bound_tokens_per_second": rows * args.link_gbps * 1e9 / streamed if streamed else 0.0,
                # Per steady pass: the copy engine's busy time, the computing (host attention included,
                # waits for the activations' trips not), and those waits.
                "pass_seconds": wall / per_pass,
                "copy_seconds": copy / per_pass,
                "compute_seconds": compute / per_pass,
                "activation_transfer_seconds": transfers / per_pass,
                "host_attention_seconds": sum(p["host_attention_seconds"] for p in full) / per_pass,
                "copy_over_compute": copy / compute if compute else 0.0,
                "activation_bytes": stats["activation_bytes_to_host"] + stats["activation_bytes_to_device"],
                "memory": stats["memory"],
            })
            if record["bound_tokens_per_second"]:
                record["of_bound"] = record["steady_decode_tokens_per_second"] / record["bound_tokens_per_second"]
            if ("device", rows) in outputs and placement == "host":
                record["equals_device_output"] = outputs["device", rows] == tokens
            records.append(record)
            print(json.dumps({k: v for k, v in record.items() if k not in ("flags", "plan", "replans")}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
