"""Greedy `generate` runs of the engine binary with their stats, shared by the offload and host-KV tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import engine

REPO = Path(__file__).resolve().parents[2]
PROMPTS = REPO / "data" / "prompts.txt"


def default_model() -> Path:
    path = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not path or not Path(path).is_file():
        pytest.skip("the default model is not fetched (scripts/setup.sh fetches it)")
    return Path(path)


def generate(model: Path, prompt_file: Path, tokens: int, *args) -> tuple[list[list[int]], dict, str]:
    """Greedy tokens per prompt, the --stats-json record and stderr."""
    stats_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"specoffload-run-stats-{os.getpid()}.json"
    command = [str(engine.require_engine()), "generate", "-m", str(model), "-f", str(prompt_file), "--temp", "0",
               "-n", str(tokens), "--json", "--ignore-eos", "-t", str(engine.THREADS), "--stats-json", str(stats_path),
               *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    stats = json.loads(stats_path.read_text())
    stats_path.unlink()
    return [json.loads(line)["tokens"] for line in done.stdout.splitlines()], stats, done.stderr


def measure_profile(path: Path, link_gbps: float, *extra) -> dict:
    """`specoffload profile` over a simulated link into `path` (extra: e.g. "-m", MODEL); the profile read back."""
    command = [str(engine.require_engine()), "profile", "-o", str(path), "-t", str(engine.THREADS), "--seconds", "0.05",
               "--sim-link-gbps", str(link_gbps), *map(str, extra)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(path.read_text())


def budget(model: Path, fraction: float) -> str:
    """A --device-mem (or --host-mem) of `fraction` of the model file, in KiB."""
    return f"{int(model.stat().st_size * fraction) // 1024}K"


def prompt_lines(count: int) -> list[str]:
    """`count` distinct prompts from data/prompts.txt, numbered past its 50 lines."""
    lines = PROMPTS.read_text().splitlines()
    return [lines[i % len(lines)] if i < len(lines) else f"{i}. {lines[i % len(lines)]}" for i in range(count)]
