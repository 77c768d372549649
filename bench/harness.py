"""The benchmark harness: named workloads, one engine run, one JSON record (issue 7).

Workloads (prompts from ../shared/data, never copied into the repository):
  code       HumanEval prompts, completed as raw text
  summarize  "Summarize the following speech: ..." over State of the Union speeches truncated to ~400 tokens, in the
             model's chat template
  mixed      the two alternating

A record carries what a reader needs to trust and reproduce a number: engine version and commit, device, model and
dtype, the flags (and the plan, when the planner chose), tokens/s with prefill included and decode only, stage
times, bytes moved and achieved bandwidth, acceptance and tau, and whether acceptance was real or simulated.
"""
from __future__ import annotations

import datetime
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SPECOFFLOAD_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
BIN = os.environ.get("SPECOFFLOAD_BIN", os.path.join(REPO, "build", "apps", "specoffload"))
CACHE = os.environ.get("SPECOFFLOAD_CACHE", os.path.expanduser("~/.cache/specoffload"))
DEFAULT_MODEL = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
SPEECH_CHARS = 1800  # about 400 tokens


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def code_prompts(n: int) -> list[str]:
    with gzip.open(os.path.join(SHARED, "HumanEval.jsonl.gz"), "rt") as f:
        return [json.loads(line)["prompt"] for line, _ in zip(f, range(n))]


def summarize_prompts(n: int) -> list[str]:
    with open(os.path.join(SHARED, "sotu.jsonl")) as f:
        speeches = [json.loads(line) for line in f]
    prompts = []
    for record in speeches[-n:]:  # the most recent speeches
        text = " ".join(record["text"].split())
        cut = text.rfind(" ", 0, SPEECH_CHARS)
        prompts.append("Summarize the following speech: " + text[:cut])
    return prompts


def workload(name: str, n: int) -> tuple[list[str], bool]:
    """(prompts, chat) of a named workload."""
    if name == "code":
        return code_prompts(n), False
    if name == "summarize":
        return summarize_prompts(n), True
    if name == "mixed":
        code, speeches = code_prompts((n + 1) // 2), summarize_prompts(n // 2)
        mixed = [p for pair in zip(code, speeches) for p in pair] + code[len(speeches):]
        return mixed[:n], False
    raise SystemExit(f"unknown workload {name!r}: expected code, summarize or mixed")


def engine_version() -> str:
    done = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def common_fields() -> dict:
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"date": datetime.date.today().isoformat(), "engine": engine_version(), "commit": commit,
            "device": cpu_name()}


def model_dtype(path: str) -> str:
    """The GGUF's most common weight type (what a pass streams)."""
    try:
        import gguf
        reader = gguf.GGUFReader(path)
        counts: dict[str, int] = {}
        for tensor in reader.tensors:
            if len(tensor.shape) > 1:
                name = gguf.GGMLQuantizationType(tensor.tensor_type).name
                counts[name] = counts.get(name, 0) + int(tensor.n_bytes)
        return max(counts, key=counts.get) if counts else "?"
    except Exception:  # noqa: BLE001 - a config directory (dummy weights) or an HF model
        return "?"


def generate(prompts: list[str], chat: bool, flags: list[str], tokens: int, threads: int = 2,
             trace: str | None = None, must_succeed: bool = True):
    """One `generate` run: (outputs, stats JSON, the plan it printed when planning). A failed run exits, or with
    must_succeed=False returns the engine's stderr (a configuration that does not fit is a result too)."""
    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = os.path.join(tmp, "prompts.txt")
        with open(prompt_file, "w") as f:
            f.write("\n".join(escape(p) for p in prompts) + "\n")
        stats_file = os.path.join(tmp, "stats.json")
        command = [BIN, "generate", "-f", prompt_file, "-e", "--json", "--temp", "0", "--ignore-eos", "-n", str(tokens),
                   "-t", str(threads), "--stats-json", stats_file, *flags] + (["--chat"] if chat else [])
        if trace:
            command += ["--trace", trace]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            if not must_succeed:
                return done.stderr
            sys.exit(f"{' '.join(command)}\n{done.stderr[-3000:]}")
        outputs = [json.loads(line)["tokens"] for line in done.stdout.splitlines()]
        with open(stats_file) as f:
            stats = json.load(f)
    plan = {}
    for line in done.stderr.splitlines():  # the plan `generate --profile` printed
        key, _, value = line.partition("  ")
        if value.strip() and key.strip() in ("rows", "schedule", "draft length k", "ring slots", "predicted"):
            plan[key.strip()] = value.strip()
    return outputs, stats, plan


def record(stats: dict, flags: list[str], plan: dict | None = None, **fields) -> dict:
    """The JSON record of one run from its stats (prefill-included tokens/s: over all passes' wall time)."""
    passes = stats["pass_records"]
    wall = sum(p["seconds"] for p in passes)
    decode = [p for p in passes if p["prefill_tokens"] == 0]
    decode_wall = sum(p["seconds"] for p in decode)
    copy_busy = sum(p["copy_busy_seconds"] for p in passes)
    model = flags[flags.index("-m") + 1] if "-m" in flags else "?"
    return {**fields,
            "model": os.path.basename(model.rstrip("/")), "dtype": model_dtype(model), "flags": flags,
            "plan": plan or {},
            "tokens_per_second": stats["decode_tokens"] / wall if wall else 0.0,
            "decode_tokens_per_second": sum(p["committed"] for p in decode) / decode_wall if decode_wall else 0.0,
            "generated_tokens": stats["decode_tokens"], "prefill_tokens": stats["prefill_tokens"],
            "passes": len(passes), "seconds": wall,
            "mean_rows_per_pass": sum(p["rows"] for p in decode) / max(1, len(decode)),
            "stage_seconds": {key: sum(p[f"{key}_seconds"] for p in passes)
                              for key in ("draft", "compute", "host", "copy_wait", "copy_busy")},
            "draft_hidden_seconds": stats.get("draft_hidden_seconds", 0.0),
            "streamed_bytes": stats["streamed_bytes"], "disk_read_bytes": stats.get("disk_read_bytes", 0),
            "copy_gbps": stats["streamed_bytes"] / copy_busy / 1e9 if copy_busy else 0.0,
            "alpha": stats["acceptance_rate"], "tau": stats["tokens_per_pass"], "mean_k": stats["mean_draft_length"],
            "acceptance": "simulated" if "simulated_acceptance" in stats else "real",
            "replans": stats.get("replans", [])}
