"""Reference tokenizers for the parity tests: Hugging Face `tokenizers` objects built from
a GGUF vocabulary or trained on the speech corpus, and GGUF files holding them (the `gguf`
package's writer) so that llama.cpp and our engine read the very same vocabulary."""

import json
from dataclasses import dataclass, field

import gguf
import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import tokenizer_support as ts

SPACE_MARKER = "\u2581"
# Hugging Face's Llama-3 and Qwen2 split regexes, as their tokenizer.json files carry them.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass
class Vocabulary:
    tokens: list
    types: list  # gguf.TokenType values
    merges: list = field(default_factory=list)  # (left, right)
    scores: list = None

    @property
    def specials(self):
        return [t for t, k in zip(self.tokens, self.types) if k == gguf.TokenType.CONTROL]


def read_gguf_vocabulary(path):
    reader = gguf.GGUFReader(str(path))
    fields = reader.fields
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"].contents()]
    types = [gguf.TokenType(t) for t in fields["tokenizer.ggml.token_type"].contents()]
    return Vocabulary(list(fields["tokenizer.ggml.tokens"].contents()), types, merges)


def write_gguf(path, vocab, model, pre=None, bos=None, eos=None, unk=None, add_bos=None, add_space_prefix=None):
    """A GGUF with tokenizer metadata, minimal llama hyper-parameters and one tiny tensor
    (enough for llama.cpp's vocab_only loading and for our reader)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_feed_forward_length(16)
    writer.add_head_count(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model(model)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges:
        writer.add_token_merges([f"{a} {b}" for a, b in vocab.merges])
    for value, add in [(bos, writer.add_bos_token_id), (eos, writer.add_eos_token_id), (unk, writer.add_unk_token_id),
                       (add_bos, writer.add_add_bos_token), (add_space_prefix, writer.add_add_space_prefix)]:
        if value is not None:
            add(value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def hf_byte_level(vocab, pre_tokenizer, ignore_merges=False):
    """Byte-level BPE over a GGUF vocabulary; CONTROL tokens become special added tokens."""
    bpe = models.BPE({t: i for i, t in enumerate(vocab.tokens)}, vocab.merges, ignore_merges=ignore_merges)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in vocab.specials])
    return tokenizer


def smollm2_pre_tokenizer():
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


def split_then_byte_level(regex):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


SENTENCEPIECE_SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def sentencepiece_like(vocab_size=4000):
    """Trains a BPE with byte fallback on the speeches, laid out like Llama-2's vocabulary
    (<unk>, <s>, </s>, 256 <0xXX> byte tokens, then pieces in merge order), with Llama-2's
    normalizer (Prepend "▁", Replace " " -> "▁") and decoder. Returns (HF tokenizer,
    Vocabulary with SentencePiece-style scores: -id for pieces, 0 for the rest)."""
    with open(ts.SHARED_DATA / "sotu.jsonl", encoding="utf-8") as f:
        speeches = [json.loads(line)["text"] for line in f]
    trainer_tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE_MARKER, prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SENTENCEPIECE_SPECIALS[:3],
                                  show_progress=False, limit_alphabet=200)
    trainer_tokenizer.train_from_iterator(speeches[::4], trainer)
    trained = json.loads(trainer_tokenizer.to_str())["model"]
    pieces = [t for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]) if t not in SENTENCEPIECE_SPECIALS]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokens = SENTENCEPIECE_SPECIALS[:3] + [f"<0x{b:02X}>" for b in range(256)] + pieces + SENTENCEPIECE_SPECIALS[3:]
    return sentencepiece_tokenizer(tokens, merges)


def sentencepiece_tokenizer(tokens, merges):
    types, scores = [], []
    for i, token in enumerate(tokens):
        if token == "<unk>":
            types.append(gguf.TokenType.UNKNOWN)
        elif token in SENTENCEPIECE_SPECIALS:
            types.append(gguf.TokenType.CONTROL)
        elif token.startswith("<0x") and len(token) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
        scores.append(-float(i) if types[-1] == gguf.TokenType.NORMAL else 0.0)
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE_MARKER),
                                                 normalizers.Replace(" ", SPACE_MARKER)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE_MARKER, " "), decoders.ByteFallback(),
                                           decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t in SENTENCEPIECE_SPECIALS if t in vocab])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return tokenizer, Vocabulary(tokens, types, [], scores)


def hf_ids(tokenizer, texts, parse_special=True, add_bos=False):
    tokenizer.encode_special_tokens = not parse_special
    try:
        return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=add_bos)]
    finally:
        tokenizer.encode_special_tokens = False
