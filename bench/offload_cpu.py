#!/usr/bin/env python3
"""The offload pipeline on the CPU backend, the paper's ablation in one run (issue 4).

Target: the default model at F16 (bench/make_target_model.py: 271 MB, 2.8x the Q4_1 file), streamed through a
device budget of 1/4.5 of it over a simulated link (--sim-link-gbps); the draft is the Q4_1 default model itself
(same vocabulary, resident). Workloads: `code` (HumanEval prompts completed as raw text) and `summarize` (State of
the Union speeches, truncated, in the chat template), greedy, a fixed number of tokens per prompt.

Rows of the table, same budgets and link for all:
  full              the planner's plan (rows, draft length, schedule, ring) from a profile measured first
                    (the machine and both models' real step costs), layer-major prefill (--step-tokens)
  full-serial /     the same plan with the schedule forced to serial or interleaved (one of the two is `full`)
  full-interleaved
  default-plan      the draft model with the default flags (32 rows, k <= 6 adaptive, serial, ring 2)
  no-spec           no speculation at the full plan's rows (the streaming baseline the issue's 2x is against)
  flexgen-like      no speculation, every prompt in one batch (streaming, large batch, layer-major prefill)

Tokens/s count generated tokens over the passes' wall time, prefill included (as the paper counts), and over the
decode-only passes. Every greedy output is compared with no-spec's (speculation must not change it).

    python3 bench/offload_cpu.py [--prompts 32] [--tokens 64] [--link-gbps 0.5] [--out FILE]

note: the link is slow because the CPU computes ~2000x slower than the GPUs the design targets: the ratio of copy
to compute time, not the absolute link speed, decides whether verifying k drafts per row is nearly free.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import make_target_model  # noqa: E402

BIN = harness.BIN
DEFAULT_MODEL = harness.DEFAULT_MODEL


def target_model() -> str:
    path = os.path.join(os.path.dirname(DEFAULT_MODEL), "SmolLM2-135M-Instruct.F16.gguf")
    if not os.path.exists(path):
        make_target_model.main(DEFAULT_MODEL, path + ".partial", "f16")
        os.replace(path + ".partial", path)
    return path


def device_budget(target: str, ratio: float) -> str:
    """--device-mem for a budget of 1/ratio of the target file."""
    return f"{int(os.path.getsize(target) / ratio) // 1024}K"


def measure_profile(path: str, target: str, threads: int, link_gbps) -> dict:
    """`specoffload profile` of this machine and both models' step costs over the simulated link, into path."""
    subprocess.run([BIN, "profile", "-o", path, "-t", str(threads), "--sim-link-gbps", str(link_gbps),
                    "-m", target, "-m", DEFAULT_MODEL, "--seconds", "0.2"], check=True, capture_output=True)
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--link-gbps", type=float, default=0.5)
    parser.add_argument("--budget-ratio", type=float, default=4.5, help="model bytes over the device budget")
    parser.add_argument("--alpha", type=float, default=0.7, help="the acceptance the planner plans for")
    parser.add_argument("--workloads", default="code,summarize")
    parser.add_argument("--step-tokens", type=int, default=4096,
                        help="tokens per step for all but the default plan: a prefill wave streams the model once")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    target = target_model()
    budget = device_budget(target, args.budget_ratio)
    common_flags = ["-m", target, "--device-mem", budget, "--sim-link-gbps", str(args.link_gbps)]
    draft = ["--draft-model", DEFAULT_MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "profile.json")
        measured_profile = measure_profile(profile, target, args.threads, args.link_gbps)
        common = {**harness.common_fields(), "threads": args.threads, "target": os.path.basename(target),
                  "target_bytes": os.path.getsize(target), "draft": os.path.basename(DEFAULT_MODEL),
                  "device_budget": budget, "sim_link_gbps": args.link_gbps, "tokens": args.tokens,
                  "prompts": args.prompts}
        records = []
        for workload in args.workloads.split(","):
            prompts, chat = harness.workload(workload, args.prompts)
            planned = ["--profile", profile, "--alpha", str(args.alpha), "--step-tokens", str(args.step_tokens)]
            full_flags = common_flags + draft + planned
            full_out, full, plan = harness.generate(prompts, chat, full_flags, args.tokens, args.threads)
            rows = plan.get("rows", "32").split()[0]
            other = "serial" if plan.get("schedule", "serial").startswith("interleaved") else "interleaved"
            wave = ["--step-tokens", str(args.step_tokens)]
            runs = [("no-spec", common_flags + wave + ["--max-rows", rows]),
                    ("full", None),
                    (f"full-{other}", common_flags + draft + planned + ["--schedule", other]),
                    ("default-plan", common_flags + draft),
                    ("flexgen-like", common_flags + wave + ["--max-rows", str(len(prompts))])]
            reference = None
            results = {}
            for name, flags in runs:
                if flags is None:
                    flags, outputs, stats, run_plan = full_flags, full_out, full, plan
                else:
                    outputs, stats, run_plan = harness.generate(prompts, chat, flags, args.tokens, args.threads)
                if name == "no-spec":
                    reference = outputs
                results[name] = harness.record(stats, flags, run_plan, config=name)
                results[name]["greedy_equal_to_no_spec"] = None if name == "no-spec" else outputs == reference
            results["full"]["config"] = f"full ({'interleaved' if other == 'serial' else 'serial'}, planned)"
            base = results["no-spec"]["tokens_per_second"]
            for name, record in results.items():
                record = {**common, "workload": workload, **record, "speedup_over_no_spec":
                          record["tokens_per_second"] / base if base else 0}
                print(json.dumps(record), flush=True)
                records.append(record)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"profile": measured_profile, "records": records}, f, indent=1)
    for r in records:
        print(f"{r['workload']:10s} {r['config']:28s} {r['tokens_per_second']:7.1f} tok/s "
              f"(decode {r['decode_tokens_per_second']:6.1f})  x{r['speedup_over_no_spec']:.2f}  "
              f"alpha {r['alpha']:.2f} tau {r['tau']:.2f}  rows {r['mean_rows_per_pass']:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
