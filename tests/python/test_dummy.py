"""--load-format dummy (random weights of real shapes from a config.json) and --simulate-acceptance."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import engine

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(engine.require_engine())] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300)


def test_dummy_mixtral_generates_with_a_byte_tokenizer(tmp_path):
    stats = tmp_path / "stats.json"
    done = _run("generate", "-m", CONFIGS / "tiny-mixtral", "--load-format", "dummy", "-p", "Hello", "-n", 40,
                "--temp", 0, "--ignore-eos", "--json", "--draft-model", CONFIGS / "tiny-mixtral", "--draft-length",
                "fixed", "--draft-max", 3, "--simulate-acceptance", 0.75, "--stats-json", stats, "--threads", 2)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert record["prompt_tokens"] == [256] + list(b"Hello")  # <s>, then one id per byte
    assert len(record["tokens"]) == 40
    assert record["simulated_acceptance"] == 0.75
    assert "SIMULATED ACCEPTANCE" in done.stderr
    summary = json.loads(stats.read_text())
    assert summary["dummy_weights"] is True and summary["simulated_acceptance"] == 0.75
    # Accepted drafts per pass follow the law: E = a + a^2 + a^3 for k = 3, a = 0.75 (~1.73); loose bounds for
    # a short run.
    assert 0 < record["accepted_tokens"] < record["drafted_tokens"]


def test_simulated_acceptance_is_refused_with_real_weights():
    model = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not model or not Path(model).is_file():
        pytest.skip("default model unavailable")
    done = _run("generate", "-m", model, "-p", "Hi", "-n", 2, "--draft-ngram", "--simulate-acceptance", 0.7)
    assert done.returncode != 0
    assert "refused with real weights" in done.stderr


def test_dummy_needs_a_config(tmp_path):
    done = _run("generate", "-m", tmp_path, "--load-format", "dummy", "-p", "Hi", "-n", 2)
    assert done.returncode != 0
    assert "config.json" in done.stderr
