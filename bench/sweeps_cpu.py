#!/usr/bin/env python3
"""Sweeps for the benchmark report's plots (issue 7), on the CPU backend's offload setup of bench/offload_cpu.py:
the default model at F16 as the target, streamed over a simulated link, the Q4_1 default model as the draft.

  rows     decode tokens/s vs rows per pass: no speculation, serial and interleaved speculation (adaptive k <= 6)
  draft    decode tokens/s vs draft length k (fixed) at 16 rows, serial and interleaved
  budget   decode tokens/s vs device memory: the target alone with all of it, against the target with what is
           left after the draft model takes its share (the paper's "GPU memory has low marginal value", redrawn
           with the memory spent on a draft instead of more resident layers)
  length   tokens/s (prefill included and decode) vs generation length 16/32/64/128 on the `mixed` workload, no
           speculation vs speculation (serial, adaptive), 16 rows
  timeline one interleaved run's Chrome trace (copy, compute, draft, disk over a few passes)

Every record is a bench/harness.py record. Greedy outputs are compared with no speculation's.

    python3 bench/sweeps_cpu.py [--link-gbps 0.5] [--tokens 64] [--sweeps rows,draft,budget,timeline] [--out FILE]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from offload_cpu import target_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--link-gbps", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workload", default="code")
    parser.add_argument("--sweeps", default="rows,draft,budget,length,timeline")
    parser.add_argument("--trace-out", default=os.path.join(harness.REPO, "bench", "results", "timeline_trace.json"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    target = target_model()
    target_bytes = os.path.getsize(target)
    draft_bytes = os.path.getsize(harness.DEFAULT_MODEL)
    link = ["--sim-link-gbps", str(args.link_gbps), "--step-tokens", "4096"]
    budget = lambda fraction: f"{int(target_bytes * fraction) // 1024}K"  # noqa: E731
    base = ["-m", target, "--device-mem", budget(1 / 4.5), *link]
    draft = ["--draft-model", harness.DEFAULT_MODEL]
    common = {**harness.common_fields(), "workload": args.workload, "tokens": args.tokens,
              "sim_link_gbps": args.link_gbps, "target_bytes": target_bytes, "draft_bytes": draft_bytes}
    records = []

    def run(sweep, name, flags, prompts, chat, reference=None, trace=None, tokens=None, **fields):
        tokens = tokens or args.tokens
        outputs, stats, plan = harness.generate(prompts, chat, flags, tokens, args.threads, trace=trace)
        rec = harness.record(stats, flags, plan, **{**common, "tokens": tokens, **fields}, sweep=sweep, config=name)
        rec["greedy_equal_to_no_spec"] = None if reference is None else outputs == reference
        print(json.dumps(rec), flush=True)
        records.append(rec)
        return outputs

    sweeps = args.sweeps.split(",")
    if "rows" in sweeps:
        for rows in (4, 8, 16, 32, 64):
            prompts, chat = harness.workload(args.workload, rows)
            flags = base + ["--max-rows", str(rows)]
            plain = run("rows", "no speculation", flags, prompts, chat, rows=rows)
            for schedule in ("serial", "interleaved"):
                run("rows", f"speculation, {schedule}", flags + draft + ["--schedule", schedule], prompts, chat, plain,
                    rows=rows)
    if "draft" in sweeps:
        prompts, chat = harness.workload(args.workload, 16)
        flags = base + ["--max-rows", "16"]
        plain = run("draft", "no speculation", flags, prompts, chat, k=0)
        for schedule in ("serial", "interleaved"):
            for k in (1, 2, 3, 4, 6, 8):
                run("draft", f"speculation, {schedule}", flags + draft + ["--schedule", schedule, "--draft-max", str(k),
                                                                           "--draft-length", "fixed"],
                    prompts, chat, plain, k=k)
    if "budget" in sweeps:
        prompts, chat = harness.workload(args.workload, 16)
        for fraction in (0.12, 0.25, 0.5, 0.75, 1.0):
            device = int(target_bytes * fraction)
            flags = ["-m", target, "--device-mem", f"{device // 1024}K", *link, "--max-rows", "16"]
            plain = run("budget", "target only", flags, prompts, chat, device_bytes=device)
            left = device - draft_bytes  # the draft takes its share of the same memory
            if left < 0.09 * target_bytes:
                continue  # below the ring's two layers and a resident share
            flags = ["-m", target, "--device-mem", f"{left // 1024}K", *link, "--max-rows", "16", *draft]
            run("budget", "target + draft in the same memory", flags, prompts, chat, plain, device_bytes=device)
    if "length" in sweeps:
        prompts, chat = harness.workload("mixed", 16)
        flags = base + ["--max-rows", "16"]
        for tokens in (16, 32, 64, 128):
            plain = run("length", "no speculation", flags, prompts, chat, tokens=tokens, workload="mixed")
            run("length", "speculation, serial", flags + draft, prompts, chat, plain, tokens=tokens, workload="mixed")
    if "timeline" in sweeps:
        prompts, chat = harness.workload(args.workload, 16)
        flags = base + ["--max-rows", "16", *draft, "--schedule", "interleaved", "--draft-max", "4", "--draft-length",
                        "fixed"]
        run("timeline", "speculation, interleaved, k 4", flags, prompts, chat, trace=args.trace_out)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
