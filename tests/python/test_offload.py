"""The offload pipeline on the CPU backend (ARCHITECTURE.md section 6: offloaded == resident,
bit for bit): with the device budget under 30% of the model, layers stream from host memory
through a ring of device slots, and greedy output equals the fully resident run token for
token, for the default model and a random mixtral-shaped model, with speculation on."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

import engine
import model_factory

REPO = Path(__file__).resolve().parents[2]
PROMPTS = REPO / "data" / "prompts.txt"


def default_model() -> Path:
    path = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not path or not Path(path).is_file():
        pytest.skip("the default model is not fetched (scripts/setup.sh fetches it)")
    return Path(path)


def generate(model: Path, prompt_file: Path, tokens: int, *args) -> tuple[list[list[int]], dict, str]:
    stats_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"specoffload-offload-stats-{os.getpid()}.json"
    command = [str(engine.require_engine()), "generate", "-m", str(model), "-f", str(prompt_file), "--temp", "0",
               "-n", str(tokens), "--json", "--ignore-eos", "-t", str(engine.THREADS), "--stats-json", str(stats_path),
               *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    stats = json.loads(stats_path.read_text())
    stats_path.unlink()
    return [json.loads(line)["tokens"] for line in done.stdout.splitlines()], stats, done.stderr


def budget(model: Path, fraction: float) -> str:
    return f"{int(model.stat().st_size * fraction) // 1024}K"


@pytest.mark.parametrize("extra", [[], ["--draft-ngram"], ["--ring-slots", "3", "--draft-layers", "4"]])
def test_default_model_streamed_equals_resident(extra, tmp_path):
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:12]))
    resident, _, _ = generate(model, prompts, 24, "--chat", "--max-rows", 8, *extra)
    streamed, stats, stderr = generate(model, prompts, 24, "--chat", "--max-rows", 8, "--device-mem",
                                       budget(model, 0.3), *extra)
    assert streamed == resident
    assert stats["streamed_bytes"] > 0, "nothing streamed: the budget held the whole model"
    assert "streamed" in stderr


def test_mixtral_streamed_equals_resident(tmp_path):
    spec = dataclasses.replace(model_factory.make_spec("mixtral", "Q8_0"), n_layers=8)
    model = model_factory.write_gguf(spec, tmp_path / "mixtral.gguf")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello world\nthe quick brown fox jumps\na\n")
    resident, _, _ = generate(model, prompts, 16)
    streamed, stats, _ = generate(model, prompts, 16, "--device-mem", budget(model, 0.29))
    assert streamed == resident
    assert stats["streamed_bytes"] > 0


def test_budget_below_the_ring_is_a_clear_error():
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "--device-mem", "1M"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "holds fewer than 2 streamed layers" in done.stderr and "--device-mem" in done.stderr, done.stderr
