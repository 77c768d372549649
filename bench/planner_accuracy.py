"""Planner prediction vs measurement on the CPU backend (issue 4: within 25% for three
configurations). Prints one JSON record per configuration.

    python bench/planner_accuracy.py [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("SPECOFFLOAD_BIN", str(REPO / "build" / "apps" / "specoffload"))
CONFIGS = [  # (name, rows, extra flags, sim link GB/s for the profile)
    ("resident, 1 row", 1, [], 0),
    ("resident, 8 rows", 8, [], 0),
    ("streamed 30%, 8 rows, 2 GB/s link", 8, ["--device-mem", "29000K", "--ring-slots", "3"], 2),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    prompts = (REPO / "data" / "prompts.txt").read_text().splitlines()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows, extra, link in CONFIGS:
            profile = Path(tmp) / f"profile-{link}.json"
            if not profile.exists():
                subprocess.run([BIN, "profile", "-o", str(profile), "-t", args.threads,
                                *(["--sim-link-gbps", str(link)] if link else [])], check=True, capture_output=True)
            prompt_file = Path(tmp) / "prompts.txt"
            prompt_file.write_text("\n".join(prompts[:rows * 4]) + "\n")
            stats = Path(tmp) / "stats.json"
            done = subprocess.run([BIN, "generate", "-m", "default", "-f", str(prompt_file), "--chat", "-n", "48",
                                   "--temp", "0", "--ignore-eos", "-t", args.threads, "--max-rows", str(rows),
                                   "--profile", str(profile), "--stats-json", str(stats),
                                   *(["--sim-link-gbps", str(link)] if link else []), *extra],
                                  capture_output=True, text=True, check=True)
            predicted = float(re.search(r"predicted\s+([\d.]+) tok/s decoding", done.stderr).group(1))
            measured = json.loads(stats.read_text())["decode_tokens_per_second"]
            records.append({"config": name, "predicted_decode_tokens_per_second": predicted,
                            "measured_decode_tokens_per_second": measured,
                            "ratio": predicted / measured, "within_25_percent": abs(predicted / measured - 1) <= 0.25})
            print(json.dumps(records[-1]))
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
