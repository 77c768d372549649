"""Bad input at the command line gives a clear message (what was expected, what was found, what to do) and a
non-zero exit, never a crash. Each case names the distinctive part of its message."""

from __future__ import annotations

import json
import os
import subprocess

import gguf
import numpy as np
import pytest

import engine
import model_factory

SPEC = model_factory.make_spec("llama", "F32")


def run(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(engine.require_engine()), *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=120)


def assert_fails_with(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, f"expected failure, got exit 0; stdout: {result.stdout[-500:]}"
    assert "CHECK failed" not in result.stderr and "Segmentation" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in stderr:\n{result.stderr}"


def test_missing_model_file():
    assert_fails_with(run("generate", "-m", "/nonexistent/model.gguf", "-p", "hi"),
                      "does not exist", "pass a .gguf file or a Hugging Face model directory")


def test_truncated_gguf(tmp_path):
    data = model_factory.gguf_path(SPEC).read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[:1000])  # inside the metadata
    assert_fails_with(run("generate", "-m", truncated, "-p", "hi"), "GGUF", "re-download or re-convert")


def test_not_a_model(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not weights\n" * 10)
    assert_fails_with(run("generate", "-m", junk, "-p", "hi"), "not a GGUF file", "expected the magic")


def test_hf_directory_without_config(tmp_path):
    assert_fails_with(run("generate", "-m", tmp_path, "-p", "hi"), "has no config.json")


def test_weight_dtype_the_engine_cannot_compute(tmp_path):
    """An IQ4_NL matrix: readable, but refused by the model layer with the supported list."""
    reader = gguf.GGUFReader(str(model_factory.gguf_path(SPEC)))
    path = tmp_path / "iq4nl.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        value_type = field.types[0]
        if value_type == gguf.GGUFValueType.ARRAY:
            writer.add_array(field.name, value)
        else:
            writer.add_key_value(field.name, value, value_type)
    for tensor in reader.tensors:
        if tensor.name == "blk.0.attn_q.weight":
            rows, cols = int(tensor.shape[1]), int(tensor.shape[0])
            raw = np.random.default_rng(0).integers(0, 256, size=(rows, cols // 32 * 18), dtype=np.uint8)
            writer.add_tensor(tensor.name, raw, raw_dtype=gguf.GGMLQuantizationType.IQ4_NL)
        else:
            writer.add_tensor(tensor.name, np.array(tensor.data).reshape([int(d) for d in reversed(tensor.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert_fails_with(run("generate", "-m", path, "-p", "hi"), "blk.0.attn_q.weight", "is IQ4_NL",
                      "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K")


@pytest.mark.parametrize("option, value, fragment", [
    ("--top-p", "2", "top_p 2 is out of range"),
    ("--temp", "-1", "temperature -1 is out of range"),
    ("--kv-mem", "12X", "is not a size"),
    ("--chat-template", "nonsense", "is not a known template"),
])
def test_bad_option_values(option, value, fragment):
    args = ["generate", "-m", model_factory.gguf_path(SPEC), "-p", "hi", option, value]
    if option == "--chat-template":
        args.append("--chat")
    assert_fails_with(run(*args), fragment)


def test_missing_prompt():
    assert_fails_with(run("generate", "-m", model_factory.gguf_path(SPEC)), "-p TEXT", "-f FILE")


def test_missing_prompt_file():
    assert_fails_with(run("generate", "-m", model_factory.gguf_path(SPEC), "-f", "/nonexistent/prompts.txt"),
                      "--file '/nonexistent/prompts.txt' cannot be read", "No such file")


def test_prompt_longer_than_the_context_fails_alone(tmp_path):
    """One prompt over the context errors out; the other prompt in the batch still completes."""
    prompts = tmp_path / "prompts.txt"
    long_prompt = " ".join(["the engine streams weights"] * 600)
    prompts.write_text("hello there\n" + long_prompt + "\n")
    result = run("generate", "-m", model_factory.gguf_path(SPEC), "-f", prompts, "-n", "4", "--temp", "0",
                 "--json")
    assert_fails_with(result, "prompt 2", "but the model's context is 1024", "shorten the prompt")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["finish_reason"] for r in records] == ["length", "error"]
    assert len(records[0]["tokens"]) == 4


def test_logits_request_errors(tmp_path):
    model = model_factory.gguf_path(SPEC)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    assert_fails_with(run("logits", "-m", model, "--input", bad_json, "--output", tmp_path / "o.bin"),
                      "should be JSON")
    out_of_vocab = tmp_path / "oov.json"
    out_of_vocab.write_text(json.dumps({"sequences": [{"tokens": [1, 99999], "prefill": 2}]}))
    assert_fails_with(run("logits", "-m", model, "--input", out_of_vocab, "--output", tmp_path / "o.bin"),
                      "token id 99999 is outside the vocabulary")
