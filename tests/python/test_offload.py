"""The offload pipeline on the CPU backend (ARCHITECTURE.md section 6: offloaded == resident,
bit for bit): with the device budget under 30% of the model, layers stream from host memory
through a ring of device slots, and greedy output equals the fully resident run token for
token, for the default model and a random mixtral-shaped model, with speculation on."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import pytest

import engine
import model_factory
from runs import PROMPTS, budget, default_model, generate, measure_profile


@pytest.mark.parametrize("extra", [[], ["--draft-ngram"], ["--ring-slots", "3", "--draft-layers", "4"],
                                   ["--schedule", "interleaved", "--draft-layers", "4"]])
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
    interleaved, stats, _ = generate(model, prompts, 16, "--device-mem", budget(model, 0.29), "--schedule",
                                     "interleaved", "--draft-layers", 2, "--draft-length", "fixed", "--draft-max", 3)
    assert interleaved == resident
    assert stats["drafted_tokens"] > 0


@pytest.mark.parametrize("extra", [[], ["--draft-layers", "4", "--schedule", "interleaved"]])
def test_disk_tier_equals_resident(extra, tmp_path):
    """Device budget 30% of the model, host budget for a third of what streams: the rest of the layers are read
    from the model file each pass (the disk tier), and greedy output still equals the resident run."""
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:8]))
    resident, _, _ = generate(model, prompts, 16, "--chat", "--max-rows", 8, *extra)
    tiered, stats, stderr = generate(model, prompts, 16, "--chat", "--max-rows", 8, "--device-mem", budget(model, 0.3),
                                     "--host-mem", budget(model, 0.25), *extra)
    assert tiered == resident
    assert stats["disk_read_bytes"] > 0 and stats["streamed_bytes"] > stats["disk_read_bytes"], stats
    assert "disk" in stderr


def test_mixtral_disk_tier_equals_resident(tmp_path):
    spec = dataclasses.replace(model_factory.make_spec("mixtral", "Q8_0"), n_layers=8)
    model = model_factory.write_gguf(spec, tmp_path / "mixtral.gguf")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello world\nthe quick brown fox jumps\na\n")
    resident, _, _ = generate(model, prompts, 16)
    tiered, stats, _ = generate(model, prompts, 16, "--device-mem", budget(model, 0.29), "--host-mem",
                                budget(model, 0.45), "--staging-slots", 2)
    assert tiered == resident
    assert stats["disk_read_bytes"] > 0


def test_a_slow_disk_paces_the_pass(tmp_path):
    """With every streamed layer on a disk throttled below the link, reads run ahead of the copies and the disk's
    bandwidth is what a pass achieves."""
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:4]))
    _, stats, _ = generate(model, prompts, 12, "--chat", "--device-mem", budget(model, 0.3), "--host-mem",
                           budget(model, 0.1), "--sim-disk-gbps", "0.5", "--sim-link-gbps", "4")
    passes = decode_passes(stats)
    achieved = stats["disk_read_bytes"] / stats["disk_busy_seconds"] / 1e9
    assert 0.4 <= achieved <= 0.55, achieved
    disk_per_pass = stats["disk_read_bytes"] / stats["passes"]
    wall = sum(p["seconds"] for p in passes) / len(passes)
    assert wall >= 0.9 * disk_per_pass / 0.5e9, (wall, disk_per_pass)


def test_layer_major_prefill_streams_the_model_once_per_wave(tmp_path):
    """A step of many prompt tokens runs each layer over micro-batches: with --step-tokens covering every prompt, the
    whole prefill wave takes one streamed pass instead of one per 512-token chunk, and outputs do not change."""
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:24]))
    args = ["--chat", "--max-rows", 24, "--device-mem", budget(model, 0.3)]
    chunked, chunked_stats, _ = generate(model, prompts, 8, *args)
    wave, wave_stats, _ = generate(model, prompts, 8, *args, "--step-tokens", 8192, "--micro-batch", 100)
    assert wave == chunked
    prefill_passes = lambda stats: sum(1 for p in stats["pass_records"] if p["prefill_tokens"] > 0)  # noqa: E731
    assert wave_stats["prefill_tokens"] > 1024, "the prompts should need several 512-token chunks"
    assert prefill_passes(chunked_stats) >= 3 and prefill_passes(wave_stats) == 1
    assert wave_stats["streamed_bytes"] < chunked_stats["streamed_bytes"]


def test_host_budget_errors_are_clear():
    model = str(default_model())
    for extra, expected in [(["--host-mem", "1M", "--device-mem", "30M"], "staging slots"),
                            (["--host-mem", "30M"], "give --device-mem too")]:
        done = subprocess.run([str(engine.require_engine()), "generate", "-m", model, "-p", "hi", *extra],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and expected in done.stderr, done.stderr


def test_budget_below_the_ring_is_a_clear_error():
    done = subprocess.run([str(engine.require_engine()), "generate", "-m", str(default_model()), "-p", "hi",
                           "--device-mem", "1M"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "holds fewer than 2 streamed layers" in done.stderr and "--device-mem" in done.stderr, done.stderr


def decode_passes(stats: dict) -> list[dict]:
    """Passes that only decoded (no prompt chunk rode along): the steady state."""
    return [p for p in stats["pass_records"] if p["prefill_tokens"] == 0 and p["verify_tokens"] > 0]


def compute_stage(record: dict) -> float:
    """The compute threads' busy time in a pass: the target, the draft and the scheduler share them."""
    return record["compute_seconds"] + record["draft_seconds"] + record["host_seconds"]


def test_copies_overlap_compute(tmp_path):
    """Issue 4's overlap criterion: with the link set so that copies dominate, a pass takes at most
    1.15x its largest stage and at most 0.7x the sum of its stages (the overlap is real: serial stages would take
    1.0x the sum, perfect overlap ~0.52x here; measured 0.55-0.61x on the 2-core CI machine)."""
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:8]))
    args = ["--chat", "--max-rows", 8, "--device-mem", budget(model, 0.3), "--ring-slots", 3]
    # Compute per pass is measured under a throttled link too: unthrottled copies compete for
    # memory bandwidth and cores, so they slow compute down.
    link_gbps = 0.0
    for _ in range(2):
        _, calibration, _ = generate(model, prompts, 24, *args, *(["--sim-link-gbps", f"{link_gbps:.4f}"] * bool(link_gbps)))
        passes = decode_passes(calibration)
        compute = sorted(compute_stage(p) for p in passes)[len(passes) // 2]
        # Copies take 1.1x the compute: the copy engine is the largest stage, compute a close second.
        link_gbps = passes[0]["streamed_bytes"] / (1.1 * compute) / 1e9
    trace = tmp_path / "trace.json"
    _, stats, stderr = generate(model, prompts, 24, *args, "--sim-link-gbps", f"{link_gbps:.4f}", "--trace", trace)
    passes = decode_passes(stats)
    assert len(passes) >= 16
    wall = sum(p["seconds"] for p in passes)
    largest = sum(max(compute_stage(p), p["copy_busy_seconds"]) for p in passes)
    stage_sum = sum(compute_stage(p) + p["copy_busy_seconds"] for p in passes)
    copy_busy = sum(p["copy_busy_seconds"] for p in passes)
    report = f"link {link_gbps:.3f} GB/s: passes {wall:.3f} s, largest stage {largest:.3f} s, sum {stage_sum:.3f} s"
    assert copy_busy > 0.5 * wall, report
    assert wall <= 1.15 * largest, report
    assert wall <= 0.7 * stage_sum, report
    # The throttle is honest: copies run at the simulated link's speed, not faster.
    achieved = sum(p["streamed_bytes"] for p in passes) / copy_busy / 1e9
    assert 0.8 * link_gbps <= achieved <= 1.05 * link_gbps, f"{report}; copies ran at {achieved:.3f} GB/s"

    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = [e for e in events if e["ph"] == "X"]
    copy_spans = [e for e in spans if e["tid"] == tracks["copy engine (host to device)"]]
    compute_spans = [e for e in spans if e["tid"] == tracks["compute (target)"]]
    assert copy_spans and compute_spans and all(e["dur"] >= 0 for e in spans)
    # Copies and compute overlap in time somewhere on the timeline.
    verify = [e for e in compute_spans if e["name"].startswith("verify")]
    assert any(c["ts"] < v["ts"] + v["dur"] and v["ts"] < c["ts"] + c["dur"] for v in verify[-5:] for c in copy_spans)


def overlap_seconds(a: list[dict], b: list[dict]) -> float:
    """Seconds during which some span of `a` and some span of `b` both run (trace spans, microseconds)."""
    def merged(spans):
        out = []
        for start, end in sorted((e["ts"], e["ts"] + e["dur"]) for e in spans):
            if out and start <= out[-1][1]:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        return out
    total, x, y = 0.0, merged(a), merged(b)
    i = j = 0
    while i < len(x) and j < len(y):
        total += max(0.0, min(x[i][1], y[j][1]) - max(x[i][0], y[j][0]))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return total / 1e6


def test_interleaved_drafting_runs_while_the_target_waits_for_copies(tmp_path):
    """Two half-batches: the draft drafts for one while the target verifies the other. With the link slow enough
    that copies dominate, the draft's work lands in the target's waits for streamed layers, so a pass takes about
    its copy time, not copy plus draft (serial draft-then-verify)."""
    model = default_model()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:8]))
    args = ["--chat", "--max-rows", 8, "--device-mem", budget(model, 0.3), "--sim-link-gbps", "0.25",
            "--draft-layers", 10, "--draft-length", "fixed", "--draft-max", 3]
    trace = tmp_path / "trace.json"
    serial_tokens, serial, _ = generate(model, prompts, 24, *args, "--schedule", "serial")
    tokens, stats, _ = generate(model, prompts, 24, *args, "--schedule", "interleaved", "--trace", trace)
    assert tokens == serial_tokens
    passes = [p for p in decode_passes(stats) if p["draft_seconds"] > 0]
    assert len(passes) >= 16
    wall = sum(p["seconds"] for p in passes)
    copy_busy = sum(p["copy_busy_seconds"] for p in passes)
    draft = sum(p["draft_seconds"] for p in passes)
    serial_wall = sum(p["seconds"] for p in decode_passes(serial))
    serial_copy = sum(p["copy_busy_seconds"] for p in decode_passes(serial))
    serial_draft = sum(p["draft_seconds"] for p in decode_passes(serial))
    report = (f"interleaved: passes {wall:.2f} s, copies {copy_busy:.2f} s, draft {draft:.2f} s; "
              f"serial: passes {serial_wall:.2f} s, copies {serial_copy:.2f} s, draft {serial_draft:.2f} s")
    assert draft >= 0.05 * copy_busy, report  # drafting is work worth hiding here
    assert wall <= copy_busy + 0.5 * draft, report  # the draft hid behind the copies
    # note: both relative to the draft's own time: faster kernels shrink it next to the copies.
    assert serial_wall >= serial_copy + 0.4 * serial_draft, report  # where serial drafting adds to them
    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = [e for e in events if e["ph"] == "X"]
    drafts = [e for e in spans if e["tid"] == tracks["draft"]]
    waits = [e for e in spans if e["tid"] == tracks["compute (target)"] and e["name"].startswith("wait")]
    # A draft span is the draft's wall time, which includes its turns at the compute gate while the target
    # computes, so only part of it lies inside the target's waits; the share depends on the machine. Serial
    # drafting puts none there (the target is idle, not waiting, while the draft runs).
    hidden = overlap_seconds(drafts, waits)
    assert hidden >= 0.2 * sum(e["dur"] for e in drafts) / 1e6, f"{report}; draft inside copy waits {hidden:.2f} s"


def test_profile_plan_and_planned_generate(tmp_path):
    """`profile` measures, `plan` plans within the budget, and `generate --profile` runs the plan:
    the planned run (its own rows, draft length and ring) gives the same greedy tokens."""
    model = default_model()
    binary = str(engine.require_engine())
    profile = tmp_path / "profile.json"
    measured = measure_profile(profile, 2)
    assert 1.0 < measured["copy_pinned_gbps"] < 2.2, measured  # the simulated link, measured
    assert all(speed["gflops"] > 0 and speed["weight_gbps"] > 0 for speed in measured["matmul"].values())

    device_mem = budget(model, 0.3)
    done = subprocess.run([binary, "plan", "-m", str(model), "--profile", str(profile), "--device-mem", device_mem, "--json",
                           "--draft-ngram", "--prompts", "12", "--gen-tokens", "24"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["streamed_bytes_per_pass"] > 0
    assert 1 <= plan["rows"] <= 12 and 2 <= plan["ring_slots"] <= 4
    budget_bytes = int(device_mem[:-1]) * 1024
    assert plan["resident_bytes"] < budget_bytes

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:12]))
    plain, _, _ = generate(model, prompts, 24, "--chat")
    planned, stats, stderr = generate(model, prompts, 24, "--chat", "--profile", profile, "--device-mem", device_mem,
                                      "--draft-ngram")
    assert "plan (from" in stderr and "schedule" in stderr
    assert planned == plain

    bad = tmp_path / "bad.json"
    bad.write_text('{"n_threads": 2}')
    done = subprocess.run([binary, "plan", "-m", str(model), "--profile", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "copy_pinned_gbps" in done.stderr, done.stderr


def test_replanning_when_the_measured_acceptance_drifts(tmp_path):
    """Planned for alpha 0.95 with a self-draft that is rarely right, drafting the plan's k every pass (fixed): once
    enough drafts are measured the planner runs again with the measured acceptance and the scheduler takes the
    shorter drafts between passes. Greedy output does not change."""
    model = default_model()
    profile = tmp_path / "profile.json"
    assert measure_profile(profile, 0.25, "-m", model)["models"], "profile -m measures the model's steps"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(PROMPTS.read_text().splitlines(keepends=True)[:16]))
    args = ["--chat", "--device-mem", budget(model, 0.3), "--sim-link-gbps", "0.25", "--draft-layers", 10,
            "--draft-length", "fixed"]
    plain, _, _ = generate(model, prompts, 32, "--chat")
    planned, stats, stderr = generate(model, prompts, 32, *args, "--profile", profile, "--alpha", "0.95")
    assert planned == plain
    first_k = int(re.search(r"draft length k +(\d+)", stderr).group(1))
    assert first_k >= 2, stderr
    assert stats["replans"], f"no re-plan: alpha {stats['acceptance_rate']:.2f}\n{stderr[-2000:]}"
    replan = stats["replans"][0]
    assert replan["alpha"] < 0.5 and replan["draft_length"] < first_k, replan

