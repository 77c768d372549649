"""The draft model's prompt window (--draft-context) on the summarize workload, in the offload setup of
offload_cpu.py: the planner's plan with the draft reading the whole prompt or only its last N tokens. Prints one
JSON record per window (tokens/s prefill included and decode only, alpha, tau, the draft's catch-up seconds and
fed tokens); greedy outputs are checked equal across windows.

    python3 bench/draft_context_cpu.py [--contexts 0,128,256] [--link-gbps 0.5] [--prompts 32] [--tokens 128] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from offload_cpu import device_budget, measure_profile, target_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", default="0,128,256")
    parser.add_argument("--link-gbps", default="0.5")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    target = target_model()
    common = ["-m", target, "--device-mem", device_budget(target, 4.5), "--sim-link-gbps", args.link_gbps, "--step-tokens", "4096",
              "--draft-model", harness.DEFAULT_MODEL]
    prompts, chat = harness.workload("summarize", args.prompts)
    records, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "profile.json")
        measure_profile(profile, target, args.threads, args.link_gbps)
        for context in (int(c) for c in args.contexts.split(",")):
            flags = common + ["--profile", profile, "--alpha", "0.7", "--draft-context", str(context)]
            outputs, stats, plan = harness.generate(prompts, chat, flags, args.tokens, args.threads)
            reference = reference if reference is not None else outputs
            record = {**harness.common_fields(), "workload": "summarize", "sim_link_gbps": float(args.link_gbps),
                      **harness.record(stats, flags, plan, config=f"draft context {context or 'all'}"),
                      "draft_context": context, "draft_catch_up_seconds": stats.get("draft_catch_up_seconds"),
                      "draft_fed_tokens": stats.get("draft_fed_tokens"), "greedy_equal": outputs == reference}
            print(json.dumps(record), flush=True)
            records.append(record)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
