"""Token ids of our tokenizer (tests/tools/tokenizer_tool) against Hugging Face `tokenizers`
and llama.cpp, on the same vocabularies, over ~2,800 varied strings; and decode(encode(x)) == x."""

import functools
import json

import llama_cpp
import pytest

import tokenizer_references as refs
import tokenizer_support as ts

pytestmark = pytest.mark.skipif(not ts.tool_path().exists(), reason=f"build {ts.tool_path()} first")

MIN_STRINGS = 2000


def compare(texts, ours, expected, what):
    """Asserts equal ids; the message shows the first few differences."""
    assert len(texts) >= MIN_STRINGS or len(texts) == len(expected)
    mismatches = [(t, o["ids"], e) for t, o, e in zip(texts, ours, expected) if o["ids"] != e]
    shown = "\n".join(f"  {t[:60]!r}: ours {o[:16]} vs {e[:16]}" for t, o, e in mismatches[:5])
    assert not mismatches, f"{what}: {len(mismatches)} of {len(texts)} strings differ\n{shown}"


def assert_round_trip(texts, ours):
    failures = [(t, o["decoded"]) for t, o in zip(texts, ours) if o["decoded"] != t]
    shown = "\n".join(f"  {t[:60]!r} -> {d[:60]!r}" for t, d in failures[:5])
    assert not failures, f"decode(encode(x)) != x for {len(failures)} strings\n{shown}"


def llama_cpp_ids(path, texts, parse_special=True, add_bos=False):
    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return [model.tokenize(t.encode(), add_bos=add_bos, special=parse_special) for t in texts]


def requests(texts, **flags):
    return [{"text": t, **flags} for t in texts]


# Bytes that are not UTF-8 (issue 17): stray continuation bytes, truncated sequences at the end and inside, bytes no
# sequence starts with, an overlong form and a surrogate (which llama.cpp's lenient decoder takes), in code and prose.
INVALID_UTF8 = [b"hello \xff world", b"caf\xc3", b"\x80abc", b"a\xc0\x80b", b"x\xed\xa0\x80y", b"\xe2\x82 z",
                b"\xf0\x9f\x98", b"\xf8\x88\x80\x80\x80", b"ok \xff\xfe end", b"\xc3\xa9\x80 done",
                b"def f():\n\t\xff\xfereturn 1\n", b"\xfe\xff\x00\x01 bom", b"Sch\xf6ne Gr\xfc\xdfe (latin-1)",
                b"\xe4\xb8\xad\xe6\x96 truncated CJK \xe6\x96\x87"]


def check_invalid_utf8_against_llama_cpp(args, path):
    ours = ts.run_tool(args, [{"hex": raw.hex()} for raw in INVALID_UTF8])
    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    expected = [model.tokenize(raw, add_bos=False, special=True) for raw in INVALID_UTF8]
    mismatches = [(raw, o["ids"], e) for raw, o, e in zip(INVALID_UTF8, ours, expected) if o["ids"] != e]
    assert not mismatches, "\n".join(f"  {raw!r}: ours {o} vs llama.cpp {e}" for raw, o, e in mismatches)


# --- (a) SmolLM2: byte-level BPE, pre-tokenizer "smollm" ---------------------------------

@functools.cache
def smollm2():
    vocab = refs.read_gguf_vocabulary(ts.DEFAULT_MODEL)
    return vocab, refs.hf_byte_level(vocab, refs.smollm2_pre_tokenizer()), ts.corpus(vocab.specials)


def test_smollm2_gguf_matches_hugging_face_and_round_trips():
    vocab, hf, texts = smollm2()
    assert len(texts) >= MIN_STRINGS
    ours = ts.run_tool(["--gguf", str(ts.DEFAULT_MODEL)], requests(texts))
    compare(texts, ours, refs.hf_ids(hf, texts), "SmolLM2 GGUF vs Hugging Face")
    assert_round_trip(texts, ours)


def test_smollm2_gguf_matches_llama_cpp():
    _, _, texts = smollm2()
    ours = ts.run_tool(["--gguf", str(ts.DEFAULT_MODEL)], requests(texts))
    compare(texts, ours, llama_cpp_ids(ts.DEFAULT_MODEL, texts), "SmolLM2 GGUF vs llama.cpp")


def test_smollm2_invalid_utf8_matches_llama_cpp():
    """llama.cpp reads invalid UTF-8 as U+FFFD for byte-level BPE; the engine used to drop those bytes."""
    check_invalid_utf8_against_llama_cpp(["--gguf", str(ts.DEFAULT_MODEL)], ts.DEFAULT_MODEL)


def test_smollm2_without_special_tokens_and_with_bos_flag():
    vocab, hf, texts = smollm2()
    sample = texts[-400:]  # the strings with special tokens in them
    ours = ts.run_tool(["--gguf", str(ts.DEFAULT_MODEL), "--no-special", "--bos"], requests(sample))
    # SmolLM2 does not ask for BOS (tokenizer.ggml.add_bos_token = false), so --bos adds none.
    compare(sample, ours, refs.hf_ids(hf, sample, parse_special=False), "SmolLM2, special tokens as text")
    compare(sample, ours, llama_cpp_ids(ts.DEFAULT_MODEL, sample, parse_special=False), "llama.cpp, special=False")
    assert_round_trip(sample, ours)


def test_smollm2_tokenizer_json_matches_hugging_face(tmp_path):
    _, hf, texts = smollm2()
    hf.save(str(tmp_path / "tokenizer.json"))
    ours = ts.run_tool(["--tokenizer-json", str(tmp_path / "tokenizer.json")], requests(texts))
    compare(texts, ours, refs.hf_ids(hf, texts), "SmolLM2 tokenizer.json vs Hugging Face")
    assert_round_trip(texts, ours)


def test_smollm2_info():
    info = ts.tool_info(["--gguf", str(ts.DEFAULT_MODEL)])
    vocab, _, _ = smollm2()
    assert info["kind"] == "byte-level" and info["n_vocab"] == len(vocab.tokens)
    assert (info["bos"], info["eos"], info["add_bos"]) == (1, 2, False)
    # <|endoftext|> (0) and <|im_end|> (2, also EOS) end generation.
    assert info["end_of_generation"] == [0, 2]
    assert "<|im_start|>" in info["chat_template"]


# --- Llama-3 and Qwen2 pre-tokenizers on the SmolLM2 vocabulary ---------------------------

@pytest.mark.parametrize("pre, regex, ignore_merges", [("llama-bpe", refs.LLAMA3_REGEX, True),
                                                       ("qwen2", refs.QWEN2_REGEX, False)])
def test_other_byte_level_pre_tokenizers(tmp_path, pre, regex, ignore_merges):
    vocab, _, texts = smollm2()
    gguf_path = tmp_path / "model.gguf"
    refs.write_gguf(gguf_path, vocab, "gpt2", pre=pre, bos=1, eos=2, add_bos=False)
    ours_gguf = ts.run_tool(["--gguf", str(gguf_path)], requests(texts))
    compare(texts, ours_gguf, llama_cpp_ids(gguf_path, texts), f"pre={pre} GGUF vs llama.cpp")
    assert_round_trip(texts, ours_gguf)

    hf = refs.hf_byte_level(vocab, refs.split_then_byte_level(regex), ignore_merges=ignore_merges)
    hf.save(str(tmp_path / "tokenizer.json"))
    ours_json = ts.run_tool(["--tokenizer-json", str(tmp_path / "tokenizer.json")], requests(texts))
    compare(texts, ours_json, refs.hf_ids(hf, texts), f"{pre}-style tokenizer.json vs Hugging Face")


def test_unknown_pre_tokenizer_is_refused_by_name(tmp_path):
    vocab, _, _ = smollm2()
    refs.write_gguf(tmp_path / "model.gguf", vocab, "gpt2", pre="made-up-pre")
    error = ts.tool_error(["--gguf", str(tmp_path / "model.gguf")])
    assert "tokenizer.ggml.pre is \"made-up-pre\"" in error
    assert "known values:" in error and "smollm" in error and "llama-bpe" in error and "qwen2" in error


# --- (b) SentencePiece-style BPE with byte fallback ----------------------------------------

@functools.cache
def sentencepiece():
    hf, vocab = refs.sentencepiece_like()
    texts = ts.corpus(refs.SENTENCEPIECE_SPECIALS[1:])
    assert not any(refs.SPACE_MARKER in t for t in texts)  # "▁" in the input cannot round-trip
    return hf, vocab, texts


@pytest.fixture(scope="module")
def sentencepiece_files(tmp_path_factory):
    hf, vocab, _ = sentencepiece()
    folder = tmp_path_factory.mktemp("sentencepiece")
    hf.save(str(folder / "tokenizer.json"))
    refs.write_gguf(folder / "model.gguf", vocab, "llama", bos=1, eos=2, unk=0, add_bos=True, add_space_prefix=True)
    return folder


@pytest.mark.parametrize("source", ["tokenizer.json", "model.gguf"])
def test_sentencepiece_matches_hugging_face_and_round_trips(sentencepiece_files, source):
    hf, _, texts = sentencepiece()
    flag = "--gguf" if source.endswith(".gguf") else "--tokenizer-json"
    ours = ts.run_tool([flag, str(sentencepiece_files / source)], requests(texts))
    compare(texts, ours, refs.hf_ids(hf, texts), f"SentencePiece-style {source} vs Hugging Face")
    assert_round_trip(texts, ours)
    # Byte fallback happened: emoji are outside the trained alphabet.
    _, vocab, _ = sentencepiece()
    byte_ids = [vocab.tokens.index(f"<0x{b:02X}>") for b in "😀".encode()]
    assert ours[texts.index("😀")]["ids"] == [vocab.tokens.index(refs.SPACE_MARKER)] + byte_ids


def test_sentencepiece_gguf_matches_llama_cpp(sentencepiece_files):
    _, _, texts = sentencepiece()
    path = sentencepiece_files / "model.gguf"
    ours = ts.run_tool(["--gguf", str(path)], requests(texts))
    compare(texts, ours, llama_cpp_ids(path, texts), "SentencePiece-style GGUF vs llama.cpp")


def test_sentencepiece_invalid_utf8_matches_llama_cpp(sentencepiece_files):
    """SentencePiece-style vocabularies keep invalid bytes as byte-fallback tokens in llama.cpp."""
    path = sentencepiece_files / "model.gguf"
    check_invalid_utf8_against_llama_cpp(["--gguf", str(path)], path)


@pytest.mark.parametrize("source", ["tokenizer.json", "model.gguf"])
def test_sentencepiece_bos_and_special_flags(sentencepiece_files, source):
    hf, _, texts = sentencepiece()
    sample = texts[-400:]
    flag = "--gguf" if source.endswith(".gguf") else "--tokenizer-json"
    ours = ts.run_tool([flag, str(sentencepiece_files / source), "--bos", "--no-special"], requests(sample))
    compare(sample, ours, refs.hf_ids(hf, sample, parse_special=False, add_bos=True), f"{source}, BOS, no special")
    if source.endswith(".gguf"):
        expected = llama_cpp_ids(sentencepiece_files / source, sample, parse_special=False, add_bos=True)
        compare(sample, ours, expected, "llama.cpp, BOS, special=False")


def test_score_merging_and_rank_merging_differ_where_explained(tmp_path):
    """llama.cpp merges SentencePiece vocabularies by token score: any neighbouring pair whose
    concatenation is a token may merge. Hugging Face merges only listed pairs, by rank. With
    merges (b,c) < (a,b) < (ab,c) and scores in the same order, "abc" first becomes a|bc;
    Hugging Face then has no rule (a, bc) and stops, llama.cpp finds the token "abc" and
    merges. Our GGUF path follows llama.cpp, our tokenizer.json path Hugging Face."""
    tokens = refs.SENTENCEPIECE_SPECIALS[:3] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [refs.SPACE_MARKER, "a", "b", "c", "bc", "ab", "abc", refs.SPACE_MARKER + "abc"]
    merges = [("b", "c"), ("a", "b"), ("ab", "c"), (refs.SPACE_MARKER, "abc")]
    hf, vocab = refs.sentencepiece_tokenizer(tokens, merges)
    hf.save(str(tmp_path / "tokenizer.json"))
    refs.write_gguf(tmp_path / "model.gguf", vocab, "llama", bos=1, eos=2, unk=0, add_bos=False,
                    add_space_prefix=True)
    ids = {t: i for i, t in enumerate(tokens)}
    text = ["abc"]
    hf_result = refs.hf_ids(hf, text)[0]
    assert hf_result == [ids[refs.SPACE_MARKER], ids["a"], ids["bc"]]
    assert llama_cpp_ids(tmp_path / "model.gguf", text)[0] == [ids[refs.SPACE_MARKER + "abc"]]
    assert ts.run_tool(["--tokenizer-json", str(tmp_path / "tokenizer.json")], requests(text))[0]["ids"] == hf_result
    assert ts.run_tool(["--gguf", str(tmp_path / "model.gguf")], requests(text))[0]["ids"] == [
        ids[refs.SPACE_MARKER + "abc"]]


def test_encoding_a_megabyte_of_english_takes_well_under_a_second():
    with open(ts.SHARED_DATA / "sotu.jsonl", encoding="utf-8") as f:
        speeches = [json.loads(line)["text"] for line in f]
    text = "\n".join(speeches)[: 1 << 20]
    reply = ts.run_tool(["--gguf", str(ts.DEFAULT_MODEL)], requests([text]))[0]
    assert reply["decoded"] == text
    # About 0.2 s on a busy 2-core machine; the bound leaves room for slower ones.
    assert reply["encode_seconds"] < 1.0, reply["encode_seconds"]


def test_hugging_face_directory_reads_tokenizer_config(sentencepiece_files):
    hf, _, texts = sentencepiece()
    (sentencepiece_files / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": False, "chat_template": "{{ '[INST]' }}"}))
    info = ts.tool_info(["--hf-dir", str(sentencepiece_files)])
    assert (info["bos"], info["eos"], info["add_bos"], info["kind"]) == (1, 2, False, "sentencepiece")
    assert info["chat_template"] == "{{ '[INST]' }}"
    sample = texts[:300]
    ours = ts.run_tool(["--hf-dir", str(sentencepiece_files), "--bos"], requests(sample))
    # add_bos_token false in tokenizer_config.json overrides the post-processor's "<s> $A".
    compare(sample, ours, refs.hf_ids(hf, sample), "HF directory with add_bos_token=false")
