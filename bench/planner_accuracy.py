"""Planner prediction vs measurement on the CPU backend (issue 4: within 25% for three configurations).

For each configuration: `profile` measures the machine (with the configuration's simulated link) and the models'
real step costs (`profile -m`); `generate` runs it and measures decode tokens/s and the acceptance; `plan`, given the
same rows, draft length and schedule and the measured acceptance, predicts decode tokens/s. Prints one JSON record
per configuration.

    python bench/planner_accuracy.py [--out FILE] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from harness import DEFAULT_MODEL, cpu_name  # noqa: E402
from offload_cpu import target_model  # noqa: E402

BIN = os.environ.get("SPECOFFLOAD_BIN", str(REPO / "build" / "apps" / "specoffload"))


def configs(target: str) -> list[dict]:
    budget = f"{int(os.path.getsize(target) / 4.5) // 1024}K"
    return [
        {"name": "resident, 1 row", "model": DEFAULT_MODEL, "rows": 1, "link": 0, "flags": []},
        {"name": "resident, 8 rows", "model": DEFAULT_MODEL, "rows": 8, "link": 0, "flags": []},
        {"name": "streamed 30%, 8 rows, 2 GB/s link", "model": DEFAULT_MODEL, "rows": 8, "link": 2,
         "flags": ["--device-mem", "29000K", "--ring-slots", "3"]},
        {"name": "F16 target streamed (1/4.5 resident), 0.5 GB/s, 16 rows, Q4_1 draft k=4 serial", "model": target,
         "rows": 16, "link": 0.5, "flags": ["--device-mem", budget, "--draft-model", DEFAULT_MODEL, "--draft-max", "4",
                                            "--draft-length", "fixed", "--schedule", "serial"]},
        {"name": "F16 target streamed (1/4.5 resident), 0.5 GB/s, 16 rows, Q4_1 draft k=4 interleaved",
         "model": target, "rows": 16, "link": 0.5,
         "flags": ["--device-mem", budget, "--draft-model", DEFAULT_MODEL, "--draft-max", "4", "--draft-length",
                   "fixed", "--schedule", "interleaved"]},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    prompts = (REPO / "data" / "prompts.txt").read_text().splitlines()
    target = target_model()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs(target):
            link = config["link"]
            link_flags = ["--sim-link-gbps", str(link)] if link else []
            profile = Path(tmp) / f"profile-{link}.json"
            if not profile.exists():
                subprocess.run([BIN, "profile", "-o", str(profile), "-t", args.threads, "-m", DEFAULT_MODEL, "-m",
                                target, *link_flags], check=True, capture_output=True)
            rows = config["rows"]
            prompt_file = Path(tmp) / "prompts.txt"
            prompt_file.write_text("\n".join(prompts[:rows * 4]) + "\n")
            stats_file = Path(tmp) / "stats.json"
            common = ["-m", config["model"], "-t", args.threads, "--max-rows", str(rows), *link_flags,
                      *config["flags"]]
            subprocess.run([BIN, "generate", "-f", str(prompt_file), "--chat", "-n", str(args.tokens), "--temp", "0",
                            "--ignore-eos", "--stats-json", str(stats_file), *common],
                           capture_output=True, text=True, check=True)
            stats = json.loads(stats_file.read_text())
            alpha = stats["acceptance_rate"]
            prompt_tokens = stats["prefill_tokens"] // (rows * 4)
            done = subprocess.run([BIN, "plan", "--profile", str(profile), "--json", "--prompts", str(rows * 4),
                                   "--prompt-tokens", str(prompt_tokens), "--gen-tokens", str(args.tokens),
                                   "--alpha", f"{alpha:.4f}", *common], capture_output=True, text=True, check=True)
            plan = json.loads(done.stdout)
            predicted = plan["decode_tokens_per_second"]
            measured = stats["decode_tokens_per_second"]
            records.append({"config": config["name"], "device": cpu_name(), "alpha": alpha,
                            "plan": {k: plan[k] for k in ("rows", "schedule", "draft_length", "decode_pass")},
                            "predicted_decode_tokens_per_second": predicted,
                            "measured_decode_tokens_per_second": measured, "ratio": predicted / measured,
                            "within_25_percent": abs(predicted / measured - 1) <= 0.25})
            print(json.dumps(records[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
