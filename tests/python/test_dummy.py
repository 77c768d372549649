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


def _logits(tmp_path, *extra) -> "numpy.ndarray":
    import numpy as np
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"sequences": [{"tokens": [256] + list(b"Hello, world"), "prefill": 13}]}))
    out = tmp_path / "logits.bin"
    done = _run("logits", "-m", CONFIGS / "tiny-mixtral", "--load-format", "dummy", *extra, "--input", request,
                "--output", out, "--threads", 2)
    assert done.returncode == 0, done.stderr
    return np.fromfile(out, dtype=np.float32)


@pytest.mark.parametrize("dtype", ["Q8_0", "Q4_0", "Q2_K", "Q4_K", "Q6_K"])
def test_quantized_dummy_weights_give_sane_logits(dtype, tmp_path):
    # Random codes with sane block scales: finite logits of the bf16 dummies' order, and other than theirs.
    import numpy as np
    base, quantized = _logits(tmp_path), _logits(tmp_path, "--dummy-type", dtype.lower())
    assert np.isfinite(quantized).all()
    assert 0.2 * np.std(base) < np.std(quantized) < 20 * np.std(base)
    assert not np.allclose(base, quantized)


def test_dummy_type_sizes_the_model_as_a_quantized_file(tmp_path):
    from test_new_architectures import gpu_box_profile
    # Qwen3-235B-A22B in Q2_K (84 bytes per 256 weights) is about 77 GB, where bf16 is 470: what a 128 GiB host
    # can stream. The plan's bytes count what the engine would place.
    sizes = {}
    for dtype in ("", "Q2_K"):
        done = _run("plan", "-m", CONFIGS / "qwen3-235b-a22b", "--load-format", "dummy",
                    *(["--dummy-type", dtype] if dtype else []), "--profile", gpu_box_profile(tmp_path / "profile.json"), "--gpu-mem", "24G", "--max-rows", 64,
                    "--json")
        assert done.returncode == 0, done.stderr
        plan = json.loads(done.stdout)
        sizes[dtype] = plan["resident_bytes"] + plan["streamed_bytes_per_pass"]
    assert 465e9 < sizes[""] < 475e9, sizes
    assert 75e9 < sizes["Q2_K"] < 80e9, sizes


def test_dummy_type_errors_say_what_is_expected():
    done = _run("generate", "-m", CONFIGS / "tiny-mixtral", "--load-format", "dummy", "--dummy-type", "q7_k", "-p",
                "Hi", "-n", 1)
    assert done.returncode != 0 and "Q4_K" in done.stderr and "q7_k" in done.stderr
    done = _run("generate", "-m", CONFIGS / "tiny-mixtral", "--dummy-type", "q4_k", "-p", "Hi", "-n", 1)
    assert done.returncode != 0 and "--load-format dummy" in done.stderr


def test_verbose_logs_loading_and_each_pass_as_it_goes():
    done = _run("generate", "-m", CONFIGS / "tiny-mixtral", "--load-format", "dummy", "-p", "Hello", "-n", 4, "--temp",
                0, "--ignore-eos", "--device-mem", "8M", "--threads", 2, "-v")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[specoffload info")]
    assert any("weights placed:" in line and "streamed each pass" in line for line in lines), done.stderr
    passes = [line for line in lines if "] pass " in line]
    assert len(passes) == 4, done.stderr  # the prompt's pass, then one per token
    assert "6 prompt tokens" in passes[0]  # <s> and one per byte


def test_layers_of_a_kind_share_one_host_slab_and_stream_the_resident_logits(tmp_path):
    """Qwen3-30B-A3B in Q4_K (16 GB) streamed through a 2 GB weight budget: every layer of a dummy model reads the
    same random bytes, so the host keeps one pinned slab for all 48 (what lets DeepSeek-V3 stream from a 128 GiB
    host), while each pass still copies every layer. The streamed logits are the in-place run's, bit for bit."""
    import numpy as np
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"sequences": [{"tokens": [1, 2, 3, 4], "prefill": 2}]}))
    logits = {}
    for name, extra in (("in place", []), ("streamed", ["--device-mem", "2G"])):
        out = tmp_path / f"{name}.bin"
        done = _run("logits", "-m", CONFIGS / "qwen3-30b-a3b", "--load-format", "dummy", "--dummy-type", "Q4_K",
                    *extra, "--input", request, "--output", out, "--threads", engine.THREADS, "-v")
        assert done.returncode == 0, done.stderr[-2000:]
        logits[name] = np.fromfile(out, dtype=np.float32)
        if extra:
            (placed,) = [line for line in done.stderr.splitlines() if "weights placed:" in line]
            streamed_gib = float(placed.split(" streamed each pass")[0].split(", ")[-1].split()[0])
            host_mib = float(placed.split(" of pinned host memory")[0].split("from ")[-1].split()[0])
            assert "GiB" in placed and "MiB of pinned host memory" in placed, placed
            assert streamed_gib > 14 and host_mib < 1000, placed  # one layer's slab (333 MiB), not 48
    assert np.isfinite(logits["in place"]).all() and logits["in place"].size == 4 * 151936
    assert np.array_equal(logits["in place"], logits["streamed"])
