"""Shared by the tokenizer tests: the C++ test driver (tests/tools/tokenizer_tool.cpp) and
the varied text the parity tests compare on."""

import gzip
import json
import os
import random
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("SPECOFFLOAD_SHARED_DATA", HERE.parents[2] / "shared" / "data"))
DEFAULT_MODEL = Path(
    os.environ.get("SPECOFFLOAD_DEFAULT_MODEL")
    or Path.home() / ".cache" / "specoffload" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
)


def build_dir() -> Path:
    return Path(os.environ.get("SPECOFFLOAD_BUILD_DIR", HERE / ".." / ".." / "build")).resolve()


def tool_path() -> Path:
    return build_dir() / "tests" / "tokenizer_tool"


def run_tool(args, requests):
    """Sends JSON lines to tokenizer_tool and returns its JSON replies, one per request."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    result = subprocess.run(
        [str(tool_path()), *args], input=lines.encode(), capture_output=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"tokenizer_tool {args} failed ({result.returncode}): {result.stderr.decode()}")
    # note: split on "\n" only; str.splitlines() would also cut at U+2028 and U+0085 inside strings.
    replies = [json.loads(line) for line in result.stdout.decode().split("\n") if line]
    assert len(replies) == len(requests), (len(replies), len(requests))
    return replies


def tool_info(args):
    result = subprocess.run([str(tool_path()), *args, "--info"], capture_output=True, check=True, timeout=120)
    return json.loads(result.stdout.decode())


def tool_error(args):
    """stderr of a tool run expected to fail."""
    result = subprocess.run([str(tool_path()), *args], input=b"", capture_output=True, check=False, timeout=120)
    assert result.returncode != 0, "expected tokenizer_tool to fail"
    return result.stderr.decode()


# --- corpus ---------------------------------------------------------------------------

def _humaneval():
    path = SHARED_DATA / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["prompt"] for r in rows] + [r["prompt"] + r["canonical_solution"] for r in rows]


def _speeches(rng, n_chunks):
    with open(SHARED_DATA / "sotu.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    out = []
    for _ in range(n_chunks):
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        out.append(text[start:start + rng.choice([20, 80, 300, 1000, 3000])])
    out += [texts[0], texts[-1]]  # two whole speeches
    return out


CJK = [
    "我们今天讨论机器学习的未来。", "人工智能正在改变世界，但是我们需要谨慎。", "北京是中华人民共和国的首都",
    "東京は日本の首都です。", "今日はいい天気ですね！", "ひらがなとカタカナ、そして漢字。",
    "한국어 문장도 포함합니다.", "서울은 대한민국의 수도입니다", "中文English混合text测试123",
    "「引用」『二重引用』（括弧）", "全角ＡＢＣ１２３！？", "我爱你 我愛你 사랑해 愛してる",
]
EMOJI = [
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵", "1️⃣", "❤️", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "🐈‍⬛", "✨", "🤖",
    "☕", "🫠", "🏴‍☠️", "©®™",
]
COMBINING = [
    "e\u0301", "n\u0303", "a\u0308\u0304", "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o", "Tiếng Việt",
    "cafe\u0301", "naïve façade", "Ǆ ǅ ǆ", "ﬁ ﬂ", "Ω Ω K K", "i\u0307", "\u0915\u094d\u0937",
]
SCRIPTS = [
    "Привет, как дела?", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "Ελληνικά και русский", "ქართული", "Հայերեն", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙", "𐍈𐌰𐌹𐍃",
]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \t", "\t ", " \n ", "\u00a0",
              "\u3000", "\u2009", "\u200b", "\u0085", "\u2028", "\x0b", "\x0c", "\r"]
WORDS = ["the", "def", "return", "x", "Hello", "world", "I'm", "don't", "WE'LL", "they'VE", "it's", "'s", "foo_bar",
         "CamelCase", "snake_case", "a.b", "http://example.com/a?b=c", "e-mail", "#include", "==", "->", "(", ")",
         "{", "}", "...", "—", "“quoted”", "‘single’", "$100", "3.14", "1,000,000", "50%", "@user", "C++"]
DIGITS = ["0", "7", "42", "123", "2024", "1234567", "00000", "3.14159", "٣٤٥", "３４５", "²³", "Ⅻ", "१२३", "½"]


def _random_mix(rng, pieces, n, max_parts=8):
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, max_parts))) for _ in range(n)]


def corpus(special_tokens=(), seed=1234):
    """Varied strings (about 2,600): code, speeches, CJK, emoji/ZWJ, combining marks,
    whitespace runs, digit runs, special tokens inside text, empty and very long words."""
    rng = random.Random(seed)
    texts = ["", " ", "a", "\n", "  leading", "trailing  ", " both ", "\t\tindent", "x" * 5000,
             "supercalifragilistic" * 300, "ab" * 3000 + " " + "9" * 2000, " " * 3000 + "end", "\n" * 500,
             "A" + "\u0301" * 200, "😀" * 400, "aGVsbG8gd29ybGQ=" * 200, "".join(map(chr, range(0x20, 0x7f))),
             "".join(chr(c) for c in range(0xa0, 0x250))]
    texts += _humaneval()
    texts += _speeches(rng, 900)
    texts += CJK + EMOJI + COMBINING + SCRIPTS
    texts += _random_mix(rng, CJK + WORDS + [" "], 100)
    texts += _random_mix(rng, EMOJI + WORDS + [" ", ""], 120)
    texts += _random_mix(rng, COMBINING + SCRIPTS + WORDS + [" "], 120)
    texts += _random_mix(rng, WHITESPACE + WORDS, 350, 12)
    texts += _random_mix(rng, WHITESPACE, 80, 10)
    texts += _random_mix(rng, DIGITS + [" ", ".", ",", "-", "x", "\n"], 200, 10)
    texts += ["".join(rng.choice("0123456789") for _ in range(rng.randint(1, 60))) for _ in range(60)]
    texts += _random_mix(rng, WORDS + [" ", "\n"], 150, 15)
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
              (0x3040, 0x30ff), (0x4e00, 0x4fff), (0xac00, 0xacff), (0x1f300, 0x1f64f), (0x2000, 0x206f)]
    for _ in range(150):
        lo, hi = rng.choice(blocks)
        texts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 30))))
    if special_tokens:
        specials = list(special_tokens)
        texts += _random_mix(rng, specials + WORDS + WHITESPACE[:6] + CJK[:2], 160, 10)
        texts += [s + s for s in specials] + [s[:-1] for s in specials] + [" " + s + " " for s in specials]
    return texts
