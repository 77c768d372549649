"""Speculative decoding end to end on the default model (ARCHITECTURE.md section 6).

Greedy speculative output equals plain greedy output token for token, for every drafter
(n-gram lookup, the target's first layers as a self-draft, a separate draft-model file), at
batch 1 (the first 16 prompts of data/prompts.txt) and in a ragged batch of 16 with refill
(all 50). A draft model with another vocabulary is refused with a clear message; k = 0
decodes plainly. The statistical tests of the sampling rule are C++ unit tests (tests/cpp/spec_acceptance_test.cpp).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
import model_factory

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import make_draft_model  # noqa: E402

PROMPTS = REPO / "data" / "prompts.txt"
TOKENS = 24
DRAFT_LAYERS = 4  # of SmolLM2-135M's 30: cheap to run; equality does not depend on how well it drafts
BATCH_ONE_PROMPTS = 16  # one row decodes prompts one after another: a third of the file keeps CI short


def default_model() -> Path:
    path = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not path or not Path(path).is_file():
        pytest.skip("the default model is not fetched (scripts/setup.sh fetches it)")
    return Path(path)


@functools.cache
def prompt_file(rows: int) -> Path:
    """data/prompts.txt, or its first BATCH_ONE_PROMPTS lines for one row."""
    if rows != 1:
        return PROMPTS
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"specoffload-spec-prompts-{os.getpid()}.txt"
    path.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:BATCH_ONE_PROMPTS]))
    return path


_runs: dict[tuple, tuple[list[list[int]], dict]] = {}  # greedy runs are deterministic: two tests share one


def generate(*args, tokens: int = TOKENS) -> tuple[list[list[int]], dict]:
    """Greedy chat generation over data/prompts.txt (see prompt_file); (tokens per prompt, stats)."""
    key = (tuple(map(str, args)), tokens)
    if key not in _runs:
        _runs[key] = run_generate(*args, tokens=tokens)
    return _runs[key]


def run_generate(*args, tokens: int) -> tuple[list[list[int]], dict]:
    stats_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"specoffload-spec-stats-{os.getpid()}.json"
    rows = int(args[args.index("--max-rows") + 1]) if "--max-rows" in args else 0
    command = [str(engine.require_engine()), "generate", "-m", str(default_model()), "-f", str(prompt_file(rows)), "--chat",
               "--temp", "0", "-n", str(tokens), "--json", "-t", str(engine.THREADS), "--stats-json", str(stats_path),
               *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    records = [json.loads(line) for line in done.stdout.splitlines()]
    stats = json.loads(stats_path.read_text())
    stats_path.unlink()
    return [r["tokens"] for r in records], stats


@pytest.fixture(scope="module")
def draft_model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("draft") / f"smollm2-first-{DRAFT_LAYERS}-layers.gguf"
    make_draft_model.main(str(default_model()), DRAFT_LAYERS, str(path))
    return path


@pytest.fixture(scope="module")
def plain() -> dict[int, list[list[int]]]:
    return {rows: generate("--max-rows", rows)[0] for rows in (1, 16)}


DRAFTERS = {
    "ngram": ["--draft-ngram", "--draft-max", "4"],
    "ngram-adaptive": ["--draft-ngram", "--draft-max", "8", "--draft-length", "adaptive"],
    "self-draft": ["--draft-layers", DRAFT_LAYERS, "--draft-max", "2", "--draft-length", "fixed"],
}


@pytest.mark.parametrize("rows", [1, 16])
@pytest.mark.parametrize("drafter", list(DRAFTERS) + ["draft-model"])
def test_greedy_speculative_equals_plain(drafter, rows, plain, draft_model_file):
    flags = DRAFTERS.get(drafter) or ["--draft-model", draft_model_file, "--draft-max", "2", "--draft-length", "fixed"]
    tokens, stats = generate("--max-rows", rows, *flags)
    assert len(tokens) == (BATCH_ONE_PROMPTS if rows == 1 else 50)
    mismatches = [i for i, (a, b) in enumerate(zip(tokens, plain[rows])) if a != b]
    assert not mismatches, f"{len(mismatches)} prompts differ from plain greedy, first: {mismatches[:5]}"
    # The drafts were really verified (this is not plain decoding in disguise).
    assert stats["drafted_tokens"] > 0 and stats["spec_row_passes"] > 0
    assert 0 <= stats["acceptance_rate"] <= 1
    assert sum(stats["acceptance_histogram"]) == stats["spec_row_passes"]


def test_draft_model_file_equals_self_draft_of_the_same_layers(draft_model_file):
    # The same weights reached two ways (own file vs the target's first layers) draft alike.
    flags = ["--max-rows", 16, "--draft-max", 3, "--draft-length", "fixed"]
    _, separate = generate(*flags, "--draft-model", draft_model_file, tokens=12)
    _, self_draft = generate(*flags, "--draft-layers", DRAFT_LAYERS, tokens=12)
    for key in ("drafted_tokens", "accepted_tokens", "acceptance_histogram"):
        assert separate[key] == self_draft[key], key


def test_draft_context_reads_less_of_the_prompt_and_keeps_the_output(plain, draft_model_file):
    """--draft-context N: the draft model reads only each prompt's last N tokens (its prefill bounded on long
    prompts); verification keeps the output the target's."""
    flags = ["--max-rows", 16, "--draft-model", draft_model_file, "--draft-max", 2, "--draft-length", "fixed"]
    _, whole = generate(*flags)
    tokens, windowed = generate(*flags, "--draft-context", 8)
    assert tokens == plain[16]
    assert windowed["drafted_tokens"] > 0
    skipped = windowed["prefill_tokens"] - 50 * 8  # prompt tokens the window leaves out
    # note: 0.5, as a weaker draft makes more passes, each feeding a few more tokens.
    assert whole["draft_fed_tokens"] - windowed["draft_fed_tokens"] >= 0.5 * skipped, (whole, windowed)
    assert 0 < windowed["draft_catch_up_seconds"] < windowed["draft_seconds"]


def test_zero_draft_length_is_plain_decoding(plain):
    tokens, stats = generate("--max-rows", 16, "--draft-ngram", "--draft-max", 0)
    assert tokens == plain[16]
    assert stats["spec_row_passes"] == 0 and stats["drafted_tokens"] == 0


def test_draft_model_with_another_vocabulary_is_refused():
    other = model_factory.gguf_path(model_factory.make_spec("llama", "F32"))
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "-md", str(other)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "draft model's vocabulary has" in done.stderr and "must use the target's tokenizer" in done.stderr, \
        done.stderr


def test_self_draft_layers_out_of_range():
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "--draft-layers", "30"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--draft-layers 30 is out of range" in done.stderr, done.stderr


def test_drafters_are_exclusive():
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "--draft-ngram", "--draft-layers", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "excludes" in done.stderr, done.stderr
