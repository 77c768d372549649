"""Runs the engine binary (SPECOFFLOAD_BIN) through its CLI contract and checks the contract as it goes.

The contract these tests rely on:

  specoffload logits -m MODEL --input REQ.json --output OUT.bin [--threads N]
      REQ.json: {"sequences": [{"tokens": [ids...], "prefill": P}, ...]}. All sequences run as one ragged batch:
      step 1 feeds each sequence's first P tokens, then each step feeds the next token of every sequence that
      has tokens left. OUT.bin: little-endian float32, for each sequence in order, for each of its tokens in
      order, n_vocab logits. stdout: exactly one JSON line {"n_vocab": V, "n_tokens": [len0, len1, ...]}.
      MODEL is a GGUF file or a Hugging Face directory.

  specoffload generate -m MODEL (-p PROMPT | -f FILE) -n N --temp 0 --json [--ignore-eos]
      stdout: one JSON object per prompt, one per line, in prompt order, with at least "prompt_tokens" (ids),
      "tokens" (generated ids) and "text". -f reads one prompt per line and generates them as one batch.

Logs belong on stderr; anything else on stdout breaks the contract and fails the test with the output shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from parity import Sequence

THREADS = 2  # the CI machine has two cores
# The parity tests pin the CPU backend (test_cuda.py asks for CUDA explicitly).
os.environ.setdefault("SPECOFFLOAD_BACKEND", "cpu")
TIMEOUT_S = 300


def engine_path() -> Path | None:
    value = os.environ.get("SPECOFFLOAD_BIN")
    return Path(value) if value and Path(value).is_file() else None


def require_engine() -> Path:
    """The engine binary, or a pytest skip that says why there is none."""
    path = engine_path()
    if path is None:
        value = os.environ.get("SPECOFFLOAD_BIN")
        reason = "SPECOFFLOAD_BIN is not set" if not value else f"SPECOFFLOAD_BIN={value} does not exist (not built)"
        pytest.skip(f"engine binary unavailable: {reason}")
    return path


def _run(args: list[str]) -> str:
    """Run the engine; return stdout. A non-zero exit fails the test with the command and stderr."""
    command = [str(require_engine())] + [str(a) for a in args]
    done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"engine exited with {done.returncode}: {' '.join(command)}\nstderr (tail):\n"
                    f"{done.stderr[-4000:]}\nstdout (tail):\n{done.stdout[-2000:]}")
    return done.stdout


def _json_lines(stdout: str, expected: int, command: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == expected, (
        f"`{command}` must print exactly {expected} JSON line(s) on stdout (logs go to stderr); got "
        f"{len(lines)}:\n" + "\n".join(lines[:20]))
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError as error:
        pytest.fail(f"`{command}` printed a line that is not JSON ({error}):\n{stdout[:4000]}")


def run_logits(model: Path, sequences: list[Sequence], threads: int = THREADS) -> list[np.ndarray]:
    """Logits of every token of every sequence, run as one ragged batch: one (len_i, n_vocab) array each."""
    with tempfile.TemporaryDirectory(prefix="specoffload-logits-") as tmp:
        request, output = Path(tmp) / "request.json", Path(tmp) / "logits.bin"
        request.write_text(json.dumps({"sequences": [s.as_request() for s in sequences]}))
        stdout = _run(["logits", "-m", model, "--input", request, "--output", output, "--threads", threads])
        (summary,) = _json_lines(stdout, 1, "logits")
        lengths = [len(s.tokens) for s in sequences]
        assert summary.get("n_tokens") == lengths, f"n_tokens {summary.get('n_tokens')} != requested {lengths}"
        n_vocab = summary["n_vocab"]
        data = np.fromfile(output, dtype="<f4")
        assert data.size == sum(lengths) * n_vocab, (
            f"{output.name} holds {data.size} floats; expected sum(n_tokens) * n_vocab = {sum(lengths) * n_vocab}")
    out, start = [], 0
    for n in lengths:
        out.append(data[start * n_vocab:(start + n) * n_vocab].reshape(n, n_vocab))
        start += n
    return out


def run_generate(model: Path, prompts: list[str], n: int, as_file: bool) -> list[dict]:
    """Greedy generation of exactly n tokens per prompt (--temp 0 --ignore-eos). With `as_file`, all prompts go
    in one call through -f (one batch; prompts must be single lines); otherwise one call with -p per prompt."""
    common = ["-n", n, "--temp", "0", "--json", "--ignore-eos"]
    if not as_file:
        return [_json_lines(_run(["generate", "-m", model, "-p", p] + common), 1, "generate -p")[0] for p in prompts]
    assert all("\n" not in p for p in prompts), "-f takes one prompt per line"
    with tempfile.TemporaryDirectory(prefix="specoffload-generate-") as tmp:
        prompt_file = Path(tmp) / "prompts.txt"
        prompt_file.write_text("".join(p + "\n" for p in prompts), encoding="utf-8")
        return _json_lines(_run(["generate", "-m", model, "-f", prompt_file] + common), len(prompts), "generate -f")
