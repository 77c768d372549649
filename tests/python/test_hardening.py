"""Bad input a new user gives (issue 17): each gets a clear error, loses nothing and changes no byte the engine did
not write. Batch-job output files and resume, paths that are not files, numbers out of range, damaged model
metadata."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

import engine
import model_factory


def tiny_model(tmp_path: Path, **changes) -> Path:
    spec = dataclasses.replace(model_factory.make_spec("llama", "Q8_0"), **changes)
    return model_factory.write_gguf(spec, tmp_path / "tiny.gguf")


def specoffload(*args, timeout: float = 120, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(engine.require_engine()), *map(str, args)], capture_output=True, text=True,
                          errors="replace", timeout=timeout, stdin=stdin)


def run_job(model: Path, input_path: Path, output: Path, *extra, timeout: float = 120) -> subprocess.CompletedProcess:
    return specoffload("run", "-m", model, "-i", input_path, "-o", output, "--temp", "0", "-n", 3, "--progress",
                       "off", "-t", engine.THREADS, *extra, timeout=timeout)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def jsonl(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# --- 1. output files the job did not write, and the input as an output ---------------------------------------------

def test_a_foreign_output_file_is_refused_and_left_as_it_was(tmp_path):
    model = tiny_model(tmp_path)
    requests = jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "hello"}])
    for content in [b"my notes, no newline at the end", b'{"custom_id": "x", "line": 1}\nhalf a line',
                    b'{"some": "json"}\n']:
        output = tmp_path / "out.jsonl"
        output.write_bytes(content)
        done = run_job(model, requests, output)
        assert done.returncode != 0 and "not an output this tool wrote" in done.stderr, done.stderr
        assert output.read_bytes() == content


def test_input_as_output_or_errors_is_refused(tmp_path):
    model = tiny_model(tmp_path)
    requests = jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "hello"}])
    before = requests.read_bytes()
    done = run_job(model, requests, requests)
    assert done.returncode != 0 and "is the input file" in done.stderr, done.stderr
    done = run_job(model, requests, tmp_path / "out.jsonl", "--errors", requests)
    assert done.returncode != 0 and "is the input file" in done.stderr, done.stderr
    done = run_job(model, requests, tmp_path / "out.jsonl", "--errors", tmp_path / "out.jsonl")
    assert done.returncode != 0 and "leave --errors out" in done.stderr, done.stderr
    assert requests.read_bytes() == before


# --- 2. resume by custom_id ----------------------------------------------------------------------------------------

def test_resume_follows_custom_ids_and_refuses_an_edited_request(tmp_path):
    model = tiny_model(tmp_path)
    lines = [{"id": f"r{i}", "prompt": f"prompt number {i}"} for i in range(4)]
    requests = jsonl(tmp_path / "in.jsonl", lines)
    output = tmp_path / "out.jsonl"
    assert run_job(model, requests, output).returncode == 0
    first = output.read_bytes()
    # Reordered, and a new request inserted at the top: only the new one runs.
    jsonl(requests, [{"id": "new", "prompt": "a new one"}] + lines[::-1])
    done = run_job(model, requests, output)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["already_done"] == 4 and summary["completed"] == 1
    ids = [r["custom_id"] for r in records(output)]
    assert sorted(ids) == sorted(["new"] + [f"r{i}" for i in range(4)]) and len(ids) == len(set(ids))
    # The same id for another request: refused before anything runs or changes.
    edited = lines[:]
    edited[2] = {"id": "r2", "prompt": "something else entirely"}
    jsonl(requests, edited)
    before = output.read_bytes()
    done = run_job(model, requests, output)
    assert done.returncode != 0 and "input changed" in done.stderr and "r2" in done.stderr, done.stderr
    assert output.read_bytes() == before and before.startswith(first)
    # Lines without ids are known by position and content: an edit there is caught too.
    plain = jsonl(tmp_path / "plain.jsonl", [{"prompt": "one"}, {"prompt": "two"}])
    plain_out = tmp_path / "plain_out.jsonl"
    assert run_job(model, plain, plain_out).returncode == 0
    jsonl(plain, [{"prompt": "zero"}, {"prompt": "one"}, {"prompt": "two"}])
    done = run_job(model, plain, plain_out)
    assert done.returncode != 0 and "input changed" in done.stderr, done.stderr


# --- 3. outputs that are not regular files ---------------------------------------------------------------------------

@pytest.mark.parametrize("output", ["dir", "/dev/full", "/dev/zero", "/dev/null"])
def test_outputs_that_are_not_regular_files_are_clear_errors(tmp_path, output):
    model = tiny_model(tmp_path)
    requests = jsonl(tmp_path / "in.jsonl", [{"prompt": "hello"}])
    if output == "dir":
        output = tmp_path / "a_directory"
        output.mkdir()
    done = run_job(model, requests, output, timeout=60)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "expected a regular file" in done.stderr, done.stderr


def test_stdout_through_a_pipe_is_refused_without_hanging(tmp_path):
    model = tiny_model(tmp_path)
    requests = jsonl(tmp_path / "in.jsonl", [{"prompt": "hello"}])
    command = f"'{engine.require_engine()}' run -m '{model}' -i '{requests}' -o /dev/stdout --progress off | cat"
    done = subprocess.run(["bash", "-c", "set -o pipefail; " + command], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "expected a regular file" in done.stderr, done.stderr


# --- 4. tiny temperatures --------------------------------------------------------------------------------------------

def test_a_tiny_temperature_is_greedy(tmp_path):
    model = engine.require_engine() and os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not model or not Path(model).is_file():
        pytest.skip("the default model is not fetched")
    greedy = specoffload("generate", "-m", model, "-p", "The capital of France is", "-n", 12, "--temp", 0, "--json")
    assert greedy.returncode == 0, greedy.stderr
    tokens = json.loads(greedy.stdout)["tokens"]
    for temperature in ["1e-40", "1e-45"]:
        tiny = specoffload("generate", "-m", model, "-p", "The capital of France is", "-n", 12, "--temp", temperature,
                           "--json", "--seed", 9)
        assert tiny.returncode == 0, tiny.stderr
        assert json.loads(tiny.stdout)["tokens"] == tokens, temperature
    requests = jsonl(tmp_path / "in.jsonl", [{"id": "t", "prompt": "The capital of France is", "max_tokens": 12,
                                              "temperature": 1e-45}])
    output = tmp_path / "out.jsonl"
    done = specoffload("run", "-m", model, "-i", requests, "-o", output, "--progress", "off")
    assert done.returncode == 0, done.stderr
    text = records(output)[0]["response"]["body"]["choices"][0]["text"]
    assert text == json.loads(greedy.stdout)["text"]


# --- 6. automatic ids and custom_ids across shards -----------------------------------------------------------------

def test_automatic_ids_cannot_collide_and_duplicates_are_found_across_shards(tmp_path):
    model = tiny_model(tmp_path)
    requests = jsonl(tmp_path / "in.jsonl", [{"prompt": "no id"}, {"id": "line-1", "prompt": "takes line 1's id"},
                                             {"id": "same", "prompt": "first"}, {"id": "same", "prompt": "second"}])
    seen = []
    for shard in ("0/2", "1/2"):
        output = tmp_path / f"out{shard[0]}.jsonl"
        done = run_job(model, requests, output, "--shard", shard)
        assert done.returncode == 0, done.stderr
        seen += records(output)
    by_line = {r["line"]: r for r in seen}
    assert sorted(by_line) == [1, 2, 3, 4]
    assert by_line[1]["custom_id"] == "line-1" and by_line[1]["error"] is None
    assert by_line[2]["error"]["code"] == "invalid_request" and "line-N" in by_line[2]["error"]["message"]
    assert by_line[3]["error"] is None and by_line[4]["error"]["code"] == "duplicate_custom_id"
    assert sum(r["custom_id"] == "same" and r["error"] is None for r in seen) == 1


# --- 7. numbers out of range -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, expected", [
    (["--seed", "18446744073709551616"], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "12abc"], "--seed"),
])
def test_seeds_out_of_range_are_refused(tmp_path, flags, expected):
    done = specoffload("generate", "-m", tiny_model(tmp_path), "-p", "hi", "-n", 1, *flags)
    assert done.returncode != 0 and expected in done.stderr and "18446744073709551615" in done.stderr, done.stderr


def test_the_largest_seed_is_taken(tmp_path):
    done = specoffload("generate", "-m", tiny_model(tmp_path), "-p", "hi", "-n", 2, "--seed", "18446744073709551615")
    assert done.returncode == 0 and "seed 18446744073709551615" in done.stderr, done.stderr


@pytest.mark.parametrize("shard", ["0/4294967297", "-1/4", "1/-4", "0/ 2", "+0/2", "2/2"])
def test_shards_out_of_range_are_refused(tmp_path, shard):
    requests = jsonl(tmp_path / "in.jsonl", [{"prompt": "hello"}])
    done = run_job(tiny_model(tmp_path), requests, tmp_path / "out.jsonl", "--shard", shard)
    assert done.returncode != 0 and "--shard" in done.stderr, done.stderr


def test_api_seeds_out_of_range_are_error_records(tmp_path):
    requests = jsonl(tmp_path / "in.jsonl", [{"id": "neg", "prompt": "a", "seed": -3},
                                             {"id": "big", "prompt": "b", "seed": 18446744073709551616},
                                             {"id": "max", "prompt": "c", "seed": 18446744073709551615}])
    output = tmp_path / "out.jsonl"
    assert run_job(tiny_model(tmp_path), requests, output).returncode == 0
    by_id = {r["custom_id"]: r for r in records(output)}
    assert by_id["neg"]["error"]["code"] == "invalid_request" and "seed" in by_id["neg"]["error"]["message"]
    assert by_id["big"]["error"]["code"] == "invalid_request"
    assert by_id["max"]["error"] is None


# --- 8. damaged model metadata -------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, expected", [
    ({"context_length": 0}, "context"),
    ({"context_length": 1 << 30}, "context"),
    ({"rope_theta": math.inf}, "rope base"),
    ({"rope_theta": math.nan}, "rope base"),
    ({"rope_scaling": "yarn", "rope_factor": 0.0, "rope_orig_context": 512}, "rope.scaling.factor"),
    ({"rope_scaling": "linear", "rope_factor": -2.0}, "rope.scaling.factor"),
    ({"rope_scaling": "yarn", "rope_factor": math.inf, "rope_orig_context": 512}, "rope.scaling.factor"),
])
def test_damaged_metadata_is_refused_at_load(tmp_path, changes, expected):
    model = tiny_model(tmp_path, **changes)
    done = specoffload("generate", "-m", model, "-p", "hi", "-n", 1)
    assert done.returncode == 1 and expected in done.stderr, done.stderr


@pytest.mark.parametrize("block_count, expected", [(1, "more than its 1 layers"), (3, "blk.2.")])
def test_block_count_must_match_the_tensors(tmp_path, block_count, expected):
    spec = model_factory.make_spec("llama", "Q8_0")
    model = model_factory.write_gguf(spec, tmp_path / "damaged.gguf", block_count=block_count)
    done = specoffload("generate", "-m", model, "-p", "hi", "-n", 1)
    assert done.returncode == 1 and expected in done.stderr, done.stderr


def test_damaged_hf_config_is_refused(tmp_path):
    spec = dataclasses.replace(model_factory.make_spec("llama", "F32"), rope_scaling="linear", rope_factor=-1.0)
    directory = model_factory.write_hf(spec, tmp_path / "hf")
    done = specoffload("generate", "-m", directory, "-p", "hi", "-n", 1)
    assert done.returncode == 1 and "rope_scaling.factor" in done.stderr, done.stderr


# --- 9. paths that are directories or FIFOs ------------------------------------------------------------------------

def test_an_input_directory_is_an_error(tmp_path):
    done = run_job(tiny_model(tmp_path), tmp_path, tmp_path / "out.jsonl")
    assert done.returncode != 0 and "is a directory" in done.stderr, done.stderr


def test_a_fifo_as_the_model_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    done = specoffload("generate", "-m", fifo, "-p", "hi", "-n", 1, timeout=30)
    assert done.returncode != 0 and "FIFO" in done.stderr, done.stderr


# --- 10. output paths checked before the work ------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--stats-json", "--trace"])
def test_unwritable_stats_and_trace_paths_fail_before_generating(tmp_path, flag):
    done = specoffload("generate", "-m", tiny_model(tmp_path), "-p", "hi", "-n", 4, "--json", flag,
                       tmp_path / "missing" / "x.json")
    assert done.returncode != 0 and flag in done.stderr and "does not exist" in done.stderr, done.stderr
    assert done.stdout == "", "nothing was generated"
    requests = jsonl(tmp_path / "in.jsonl", [{"prompt": "hello"}])
    output = tmp_path / "out.jsonl"
    done = run_job(tiny_model(tmp_path), requests, output, "--stats-json", tmp_path)
    assert done.returncode != 0 and "--stats-json" in done.stderr and "directory" in done.stderr, done.stderr
    assert not output.exists(), "the job did not run"
