"""The host KV tier on the CPU backend (issue 16): the target's KV cache in host memory, attention on host
threads, q/k/v and the attention output crossing the simulated link. Greedy output equals the device-KV run bit
for bit with streaming, speculation, interleaving and refill on; rows are no longer bounded by device memory
(256 rows of the default model under a device too small for their cache, 1024 rows of a small model); and a
planned run applies every choice of its plan."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

import engine
import model_factory
from runs import budget, default_model, generate, measure_profile, prompt_lines

# The choices a plan makes and the engine reports as applied (Plan::to_json, Engine::applied_plan_json).
PLAN_FIELDS = ["rows", "schedule", "draft_length", "draft_subbatch", "ring_slots", "kv_placement", "prefill_chunk",
               "resident_bytes", "streamed_bytes_per_pass", "disk_bytes_per_pass", "host_budget_bytes"]


def write_prompts(path, count: int):
    path.write_text("\n".join(prompt_lines(count)) + "\n")
    return path


@pytest.mark.parametrize("extra", [[], ["--draft-ngram"], ["--draft-layers", 4, "--schedule", "interleaved"]])
def test_default_model_host_kv_equals_device_kv(extra, tmp_path):
    """12 prompts through 5 rows (rows refill as prompts finish), weights streamed under 30% of the model over a
    simulated link."""
    model = default_model()
    prompts = write_prompts(tmp_path / "prompts.txt", 12)
    args = ["--chat", "--max-rows", 5, "--device-mem", budget(model, 0.3), "--sim-link-gbps", 8, *extra]
    device, device_stats, _ = generate(model, prompts, 20, *args, "--kv-cache", "device")
    host, stats, stderr = generate(model, prompts, 20, *args, "--kv-cache", "host")
    assert host == device
    assert stats["memory"]["kv_placement"] == "host" and device_stats["memory"]["kv_placement"] == "device"
    assert stats["memory"]["kv_bytes"] == device_stats["memory"]["kv_bytes"] > 0
    # The pages are outside the device: its peak drops by the cache (less a step's activations, whose size
    # varies with the adaptive drafts).
    assert stats["memory"]["device_bytes_peak"] <= device_stats["memory"]["device_bytes_peak"] - stats["memory"]["kv_bytes"] / 2
    assert stats["host_attention_seconds"] > 0 and stats["activation_bytes_to_host"] > 0
    assert stats["activation_bytes_to_device"] > 0 and "host KV" in stderr
    if extra:
        assert stats["drafted_tokens"] > 0


def test_mixtral_host_kv_equals_device_kv(tmp_path):
    spec = dataclasses.replace(model_factory.make_spec("mixtral", "Q8_0"), n_layers=8)
    model = model_factory.write_gguf(spec, tmp_path / "mixtral.gguf")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello world\nthe quick brown fox jumps\na\nover the lazy dog, again and again\n")
    args = ["--max-rows", 3, "--device-mem", budget(model, 0.29), "--schedule", "interleaved", "--draft-layers", 2,
            "--draft-length", "fixed", "--draft-max", 3]
    device, _, _ = generate(model, prompts, 16, *args, "--kv-cache", "device")
    host, stats, _ = generate(model, prompts, 16, *args, "--kv-cache", "host")
    assert host == device
    assert stats["drafted_tokens"] > 0 and stats["streamed_bytes"] > 0 and stats["host_attention_seconds"] > 0


def test_256_rows_fit_with_host_kv_where_device_kv_does_not(tmp_path):
    """256 rows of the default model, weights under 30% of the model, on a simulated device of 200 MiB: their
    KV cache (256 rows x a 256-position page = 1.5 GB) fits only in host memory."""
    model = default_model()
    prompts = write_prompts(tmp_path / "prompts.txt", 256)
    args = ["--max-rows", 256, "--step-tokens", 8192, "--device-mem", budget(model, 0.29), "--gpu-mem", "200M"]
    tokens, stats, _ = generate(model, prompts, 3, *args, "--kv-cache", "host")
    assert len(tokens) == 256 and all(len(t) == 3 for t in tokens)
    assert max(p["rows"] for p in stats["pass_records"]) == 256
    memory = stats["memory"]
    assert memory["kv_placement"] == "host" and memory["kv_bytes"] >= 256 * 5_000_000, memory
    assert memory["device_bytes_peak"] <= 200 << 20 < memory["kv_bytes"], memory

    # On the device the same cache does not fit: rows fail with an error that names the way out.
    command = [str(engine.require_engine()), "generate", "-m", str(model), "-f", str(prompts), "--temp", "0", "-n", "3",
               "-t", str(engine.THREADS), "--json", *map(str, args), "--kv-cache", "device"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "--gpu-mem" in done.stderr and "--kv-cache host" in done.stderr, done.stderr[-2000:]

    # auto sees that the cache does not fit the device and puts it in host memory.
    _, auto_stats, stderr = generate(model, prompts, 1, *args)
    assert auto_stats["memory"]["kv_placement"] == "host", stderr[-2000:]


def test_1024_rows_in_one_pass(tmp_path):
    spec = dataclasses.replace(model_factory.make_spec("llama", "Q8_0"), context_length=256)
    model = model_factory.write_gguf(spec, tmp_path / "llama.gguf")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"{i} hello world\n" for i in range(1024)))
    args = ["--max-rows", 1024, "--step-tokens", 16384, "--kv-page-tokens", 16]
    host, stats, _ = generate(model, prompts, 4, *args, "--kv-cache", "host")
    device, _, _ = generate(model, prompts, 4, *args, "--kv-cache", "device")
    assert host == device and len(host) == 1024
    assert max(p["rows"] for p in stats["pass_records"]) == 1024


def test_the_plan_is_what_runs(tmp_path):
    """`plan` prints the choice for a job; `generate --profile` applies every field of it (rows, schedule, draft
    length and sub-batch, ring slots, KV placement, step size, the weights' placement) and records the applied
    choice beside the plan; the device memory it used stays within the plan's."""
    model = default_model()
    binary = str(engine.require_engine())
    profile = tmp_path / "profile.json"
    measured = measure_profile(profile, 0.3)
    assert measured["cpu_attention_gflops"] > 0 and measured["cpu_attention_gflops"] != measured["attention_gflops"]

    prompts = write_prompts(tmp_path / "prompts.txt", 40)
    args = ["--device-mem", budget(model, 0.3), "--gpu-mem", "120M", "--draft-ngram", "--sim-link-gbps", 0.3]
    _, stats, stderr = generate(model, prompts, 12, *args, "--profile", profile)
    plan, applied = stats["plan"], stats["applied_plan"]
    assert {field: applied[field] for field in PLAN_FIELDS} == {field: plan[field] for field in PLAN_FIELDS}, stderr
    assert plan["kv_placement"] == "host", "a 120 MiB device holds the weights' share, not 40 rows of KV"
    assert stats["memory"]["kv_placement"] == "host"
    assert stats["memory"]["device_bytes_peak"] <= plan["device_bytes"], (plan, stats["memory"], stats.get("applied_plan"))
    assert max(p["rows"] for p in stats["pass_records"]) <= plan["rows"]

    workload = plan["workload"]
    done = subprocess.run([binary, "plan", "-m", str(model), "--profile", str(profile), "--json", "--prompts",
                           str(workload["prompts"]), "--prompt-tokens", str(workload["prompt_tokens"]), "--gen-tokens",
                           str(workload["gen_tokens"]), *map(str, args[:-2])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert {field: printed[field] for field in PLAN_FIELDS} == {field: plan[field] for field in PLAN_FIELDS}


def test_kv_cache_option_is_checked():
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "--kv-cache", "disk"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--kv-cache" in done.stderr and "host" in done.stderr, done.stderr
