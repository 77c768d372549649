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
import datetime
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from cpu_vs_llama import DEFAULT_MODEL, cpu_name  # noqa: E402
import make_target_model  # noqa: E402
from spec_cpu import code_prompts, escape, summarize_prompts  # noqa: E402

BIN = os.environ.get("SPECOFFLOAD_BIN", os.path.join(REPO, "build", "apps", "specoffload"))


def target_model() -> str:
    path = os.path.join(os.path.dirname(DEFAULT_MODEL), "SmolLM2-135M-Instruct.F16.gguf")
    if not os.path.exists(path):
        make_target_model.main(DEFAULT_MODEL, path + ".partial", "f16")
        os.replace(path + ".partial", path)
    return path


def generate(prompts, chat, flags, tokens, threads):
    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = os.path.join(tmp, "prompts.txt")
        with open(prompt_file, "w") as f:
            f.write("\n".join(escape(p) for p in prompts) + "\n")
        stats_file = os.path.join(tmp, "stats.json")
        command = [BIN, "generate", "-f", prompt_file, "-e", "--json", "--temp", "0", "--ignore-eos", "-n", str(tokens),
                   "-t", str(threads), "--stats-json", stats_file, *flags] + (["--chat"] if chat else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)}\n{done.stderr[-3000:]}")
        outputs = [json.loads(line)["tokens"] for line in done.stdout.splitlines()]
        with open(stats_file) as f:
            stats = json.load(f)
    plan = {}
    for line in done.stderr.splitlines():  # the plan generate --profile printed
        key, _, value = line.partition("  ")
        if value.strip() and key.strip() in ("rows", "schedule", "draft length k", "ring slots", "predicted"):
            plan[key.strip()] = value.strip()
    return outputs, stats, plan


def summarize_run(name, stats, plan, outputs, reference):
    passes = stats["pass_records"]
    wall = sum(p["seconds"] for p in passes)
    decode = [p for p in passes if p["prefill_tokens"] == 0]
    decode_wall = sum(p["seconds"] for p in decode)
    decode_committed = sum(p["committed"] for p in decode)
    copy_busy = sum(p["copy_busy_seconds"] for p in passes)
    return {"config": name, "plan": plan,
            "tokens_per_second": stats["decode_tokens"] / wall if wall else 0,
            "decode_tokens_per_second": decode_committed / decode_wall if decode_wall else 0,
            "generated_tokens": stats["decode_tokens"], "prefill_tokens": stats["prefill_tokens"],
            "passes": len(passes), "seconds": wall, "mean_rows_per_pass": sum(p["rows"] for p in decode) / max(1, len(decode)),
            "alpha": stats["acceptance_rate"], "tau": stats["tokens_per_pass"], "mean_k": stats["mean_draft_length"],
            "streamed_bytes": stats["streamed_bytes"], "copy_gbps": stats["streamed_bytes"] / copy_busy / 1e9 if copy_busy else 0,
            "draft_seconds": stats["draft_seconds"], "draft_hidden_seconds": stats.get("draft_hidden_seconds", 0),
            "greedy_equal_to_no_spec": None if reference is None else outputs == reference}


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
    budget = f"{int(os.path.getsize(target) / args.budget_ratio) // 1024}K"
    common_flags = ["-m", target, "--device-mem", budget, "--sim-link-gbps", str(args.link_gbps)]
    draft = ["--draft-model", DEFAULT_MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "profile.json")
        subprocess.run([BIN, "profile", "-o", profile, "-t", str(args.threads), "--sim-link-gbps", str(args.link_gbps),
                        "-m", target, "-m", DEFAULT_MODEL, "--seconds", "0.2"], check=True, capture_output=True)
        with open(profile) as f:
            measured_profile = json.load(f)
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        common = {"date": datetime.date.today().isoformat(), "commit": commit, "device": cpu_name(),
                  "threads": args.threads, "target": os.path.basename(target), "target_bytes": os.path.getsize(target),
                  "draft": os.path.basename(DEFAULT_MODEL), "device_budget": budget, "sim_link_gbps": args.link_gbps,
                  "tokens": args.tokens, "prompts": args.prompts, "acceptance": "real"}
        records = []
        workloads = {"code": (code_prompts(args.prompts), False), "summarize": (summarize_prompts(args.prompts), True)}
        for workload in args.workloads.split(","):
            prompts, chat = workloads[workload]
            planned = ["--profile", profile, "--alpha", str(args.alpha), "--step-tokens", str(args.step_tokens)]
            full_out, full, plan = generate(prompts, chat, common_flags + draft + planned, args.tokens, args.threads)
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
                    outputs, stats, run_plan = full_out, full, plan
                else:
                    outputs, stats, run_plan = generate(prompts, chat, flags, args.tokens, args.threads)
                if name == "no-spec":
                    reference = outputs
                results[name] = summarize_run(name, stats, run_plan, outputs, reference)
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
