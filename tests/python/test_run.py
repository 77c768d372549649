"""`specoffload run`: JSONL batch jobs on the default model.

- malformed input: one clear error record per bad line (16 kinds), every good line completed;
- crash safety: kill -9 at 10 random moments and resume each time; the output ends with every id exactly once and,
  greedy, the same text as an uninterrupted run; a torn last record is repaired;
- shards: --shard I/N split the lines deterministically and together cover the job.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import engine


def _model() -> str:
    value = os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    if not value or not Path(value).is_file():
        pytest.skip("default model unavailable (SPECOFFLOAD_DEFAULT_MODEL)")
    return value


def _command(input_path: Path, output_path: Path, *extra, rows: int = 8) -> list[str]:
    return [str(engine.require_engine()), "run", "-m", _model(), "-i", str(input_path), "-o", str(output_path),
            "--temp", "0", "--threads", "2", "--progress", "log", "--max-rows", str(rows), *map(str, extra)]


def _run(input_path: Path, output_path: Path, *extra, rows: int = 8) -> dict:
    done = subprocess.run(_command(input_path, output_path, *extra, rows=rows), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _good_lines(n: int) -> list[str]:
    topics = ["the sea", "a robot", "autumn", "bread", "trains", "the moon", "rivers", "chess"]
    lines = []
    for i in range(n):
        if i % 2 == 0:
            lines.append(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                                     "body": {"messages": [{"role": "user", "content": f"Write one sentence about "
                                                                                       f"{topics[i % len(topics)]}."}],
                                              "max_tokens": 12 + i % 5}}))
        else:
            lines.append(json.dumps({"id": f"req-{i}", "prompt": f"{i} + {i} =", "max_tokens": 10 + i % 7}))
    return lines


BAD_LINES = {
    "not json": "this is not json",
    "truncated json": '{"prompt": "abc"',
    "not an object": "[1, 2, 3]",
    "prompt not a string": '{"prompt": 42}',
    "no prompt or messages": '{"id": "x1", "text": "hello"}',
    "empty messages": '{"messages": []}',
    "message without content": '{"messages": [{"role": "user"}]}',
    "unknown role": '{"messages": [{"role": "wizard", "content": "hi"}]}',
    "content not a string": '{"messages": [{"role": "user", "content": ["a"]}]}',
    "unknown url": '{"custom_id": "u1", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}',
    "method not POST": '{"custom_id": "m1", "method": "GET", "url": "/v1/completions", "body": {"prompt": "x"}}',
    "body not an object": '{"custom_id": "b1", "method": "POST", "url": "/v1/completions", "body": "x"}',
    "negative max_tokens": '{"prompt": "hi", "max_tokens": -5}',
    "max_tokens not an integer": '{"prompt": "hi", "max_tokens": "ten"}',
    "temperature out of range": '{"prompt": "hi", "temperature": 7}',
    "custom_id not a string": '{"custom_id": 12, "url": "/v1/completions", "body": {"prompt": "x"}}',
    "duplicate id": '{"id": "req-0", "prompt": "again"}',
    "prompt longer than the context": json.dumps({"prompt": "word " * 9000, "max_tokens": 4}),
}


def test_malformed_lines_become_error_records_and_good_lines_complete(tmp_path):
    good = _good_lines(6)
    lines = good[:3] + list(BAD_LINES.values()) + good[3:]
    lines.insert(5, '{"prompt": "bad utf8 \xff"}')  # placeholder, replaced by raw bytes below
    raw = "\n".join(lines).encode("utf-8").replace('bad utf8 \xff'.encode("utf-8"), b"bad utf8 \xff\xfe") + b"\n"
    input_path = tmp_path / "in.jsonl"
    input_path.write_bytes(raw)
    output = tmp_path / "out.jsonl"
    summary = _run(input_path, output)
    records = _records(output)
    errors = [r for r in records if r["error"] is not None]
    successes = [r for r in records if r["error"] is None]
    assert summary["errors"] == len(BAD_LINES) + 1 == len(errors), errors
    assert sorted(r["custom_id"] for r in successes) == sorted(f"req-{i}" for i in range(6))
    # One error per bad line, each naming its line and saying what was expected.
    assert len({r["line"] for r in errors}) == len(errors)
    for record in errors:
        message = record["error"]["message"]
        assert message.startswith(f"line {record['line']}:"), message
        assert record["response"] is None
    for record in successes:
        body = record["response"]["body"]
        assert record["response"]["status_code"] == 200
        assert body["usage"]["completion_tokens"] > 0
        assert body["object"] in ("chat.completion", "text_completion")
    messages = " ".join(r["error"]["message"] for r in errors)
    for expected in ("not valid JSON", "expected a JSON object", "should be a string", "expected \"prompt\" or",
                     "is empty", "expected system, user or assistant", "/v1/embeddings", "expected \"POST\"",
                     "non-negative integer", "expected a number in", "already used on line", "context"):
        assert expected in messages, expected


def _uninterrupted(tmp_path: Path, input_path: Path, rows: int) -> tuple[dict[str, str], float]:
    reference = tmp_path / "reference.jsonl"
    started = time.time()
    _run(input_path, reference, rows=rows)
    texts = {r["custom_id"]: json.dumps(r["response"]["body"]["choices"]) for r in _records(reference)}
    return texts, time.time() - started


def test_kill_nine_and_resume_loses_and_repeats_nothing(tmp_path):
    input_path = tmp_path / "in.jsonl"
    input_path.write_text("\n".join(_good_lines(40)) + "\n")
    # note: 2 rows at a time, so the job lasts long enough for ten kills at random moments
    expected, seconds = _uninterrupted(tmp_path, input_path, rows=2)
    output = tmp_path / "out.jsonl"
    rng = random.Random(5)
    kills = 0
    while kills < 10:
        process = subprocess.Popen(_command(input_path, output, rows=2), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, max(0.6, seconds / 8)))
        if process.poll() is not None:
            break  # finished before this kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        if kills == 5:  # a crash mid-append leaves a torn record: the first part of one the job writes
            with open(output, "ab") as f:
                f.write(b'{"id":"batch_req_2","custom_id":"req-1","respo')
    summary = _run(input_path, output, rows=2)
    records = _records(output)
    ids = [r["custom_id"] for r in records]
    assert sorted(ids) == sorted(expected), "every id exactly once"
    assert len(ids) == len(set(ids))
    assert {r["custom_id"]: json.dumps(r["response"]["body"]["choices"]) for r in records} == expected
    assert kills == 10, f"only {kills} kills landed before the job finished"
    assert summary["lines"] == 40


def test_shards_split_the_job_and_cover_it(tmp_path):
    input_path = tmp_path / "in.jsonl"
    input_path.write_text("\n".join(_good_lines(12)) + "\n")
    seen = []
    for index in range(3):
        output = tmp_path / f"shard{index}.jsonl"
        summary = _run(input_path, output, "--shard", f"{index}/3")
        assert summary["lines"] == 4
        seen += [r["custom_id"] for r in _records(output)]
    assert sorted(seen) == sorted(f"req-{i}" for i in range(12))
    quiet = [arg if arg != "log" else "off" for arg in _command(input_path, tmp_path / "q.jsonl", "--shard", "0/3")]
    done = subprocess.run(quiet, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "progress" not in done.stderr, done.stderr  # --progress off draws nothing
    done = subprocess.run(_command(input_path, tmp_path / "x.jsonl", "--shard", "3/3"), capture_output=True, text=True)
    assert done.returncode != 0 and "0 <= I < N" in done.stderr


def test_slurm_array_script_runs_the_shards(tmp_path):
    """deploy/slurm/run_shards.sbatch as Slurm would run it: one task per array index."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "slurm" / "run_shards.sbatch"
    input_path = tmp_path / "in.jsonl"
    input_path.write_text("\n".join(_good_lines(6)) + "\n")
    for index in range(2):
        env = dict(os.environ, SPECOFFLOAD=str(engine.require_engine()), MODEL=_model(), INPUT=str(input_path),
                   OUTDIR=str(tmp_path / "out"), SLURM_ARRAY_TASK_ID=str(index), SLURM_ARRAY_TASK_MIN="0",
                   SLURM_ARRAY_TASK_MAX="1", SPECOFFLOAD_ARGS="--temp 0 --threads 2")
        done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    merged = [json.loads(line) for path in sorted((tmp_path / "out").glob("answers.*-of-2.jsonl"))
              for line in path.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in merged) == sorted(f"req-{i}" for i in range(6))


def test_errors_file_takes_error_records_and_resume_reads_both(tmp_path):
    input_path = tmp_path / "in.jsonl"
    input_path.write_text("\n".join(_good_lines(3) + ['{"prompt": 1}', "nope"]) + "\n")
    output, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    stats_path = tmp_path / "stats.json"
    first = _run(input_path, output, "--errors", errors, "--stats-json", stats_path)
    assert first["completed"] == 3 and first["errors"] == 2
    # --stats-json: the engine's own count of the job's work, as `generate` writes it.
    stats = json.loads(stats_path.read_text())
    completion_tokens = sum(r["response"]["body"]["usage"]["completion_tokens"] for r in _records(output))
    prompt_tokens = sum(r["response"]["body"]["usage"]["prompt_tokens"] for r in _records(output))
    assert stats["prefill_tokens"] == prompt_tokens
    # each request's first token comes out of its prefill, the rest out of decode steps
    assert stats["decode_tokens"] == completion_tokens - first["completed"]
    assert stats["pass_records"] and stats["backend"].startswith("cpu")
    assert [r["line"] for r in _records(errors)] == [4, 5]
    assert all(r["error"] is None for r in _records(output))
    # The Batch API's fields in its order, then this tool's: the input line and its hash (resume).
    assert list(_records(output)[0]) == ["id", "custom_id", "response", "error", "line", "input_hash"]
    again = _run(input_path, output, "--errors", errors)
    assert again["already_done"] == 5 and again["completed"] == 0 and again["errors"] == 0
    assert len(_records(output)) == 3 and len(_records(errors)) == 2


def test_stop_strings_end_the_text_before_the_match(tmp_path):
    prompt = {"prompt": "1, 2, 3, 4,", "max_tokens": 24}
    input_path = tmp_path / "in.jsonl"
    input_path.write_text(json.dumps({"id": "full", **prompt}) + "\n" +
                          json.dumps({"id": "cut", **prompt, "stop": [",", "never"]}) + "\n" +
                          json.dumps({"id": "two", **prompt, "n": 2}) + "\n")
    output = tmp_path / "out.jsonl"
    _run(input_path, output)
    records = {r["custom_id"]: r for r in _records(output)}
    full = records["full"]["response"]["body"]["choices"][0]["text"]
    assert "," in full, full
    cut = records["cut"]["response"]["body"]["choices"][0]
    assert cut["text"] == full[:full.index(",")] and cut["finish_reason"] == "stop"
    assert records["cut"]["response"]["body"]["usage"]["completion_tokens"] < 24
    assert "one choice" in records["two"]["error"]["message"]
