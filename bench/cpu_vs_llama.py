"""This engine vs llama.cpp on the CPU, side by side in one run (issue: foundation).

Three workloads on the same GGUF file, same thread count, greedy decoding:
  decode_1   one sequence: 128 tokens generated after a short prompt   -> decode tok/s
  prefill    one 512-token prompt (State of the Union text)           -> prefill tok/s
  decode_32  32 HumanEval prompts, 128 tokens each, one batch         -> aggregate decode tok/s

Times exclude process start and model load on both sides: the engine reports its own
per-step timings (--stats-json); llama.cpp is timed around llama_decode calls only.
Each measurement is the best of --repeats runs. Prints one JSON record per workload and
writes them all to --out.

    python bench/cpu_vs_llama.py [--model PATH] [--threads 2] [--repeats 3] [--out FILE]
"""
import argparse, ctypes, datetime, gzip, json, os, platform, subprocess, sys, tempfile, time

import numpy as np
import llama_cpp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from harness import DEFAULT_MODEL, SHARED, cpu_name  # noqa: E402


def humaneval_prompts(n):
    with gzip.open(os.path.join(SHARED, "HumanEval.jsonl.gz"), "rt") as f:
        return [json.loads(line)["prompt"] for line, _ in zip(f, range(n))]


def speech_text():
    with open(os.path.join(SHARED, "sotu.jsonl")) as f:
        record = json.loads(f.readline())
    return next(v for v in record.values() if isinstance(v, str) and len(v) > 2000)


class LlamaCpp:
    """llama.cpp through the low-level API, so batches of sequences can be decoded together."""

    def __init__(self, model_path, threads, n_seq, n_ctx):
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), model_params)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = 2048
        params.n_ubatch = 512
        params.n_seq_max = n_seq
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        self.batch = llama_cpp.llama_batch_init(2048, 0, n_seq)

    def tokenize(self, text):
        buffer = (llama_cpp.llama_token * (len(text) + 16))()
        n = llama_cpp.llama_tokenize(self.vocab, text.encode(), len(text.encode()), buffer, len(buffer), False, True)
        return list(buffer[:n])

    def clear(self):
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)

    def decode(self, entries):
        """entries: (token, position, sequence, want_logits). Returns seconds in llama_decode."""
        b = self.batch
        b.n_tokens = len(entries)
        for i, (token, position, sequence, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = position
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = sequence
            b.logits[i] = logits
        start = time.perf_counter()
        if llama_cpp.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        return time.perf_counter() - start

    def argmax(self, index):
        pointer = llama_cpp.llama_get_logits_ith(self.ctx, index)
        return int(np.argmax(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))))

    def prefill_seconds(self, tokens):
        self.clear()
        seconds = 0.0
        for start in range(0, len(tokens), 2048):
            chunk = tokens[start:start + 2048]
            seconds += self.decode([(t, start + i, 0, i == len(chunk) - 1) for i, t in enumerate(chunk)])
        return seconds

    def generate(self, prompts, n_new):
        """Greedy, all prompts as one batch. Returns (decode tokens, decode seconds)."""
        self.clear()
        next_tokens = []
        for s, prompt in enumerate(prompts):
            self.decode([(t, i, s, i == len(prompt) - 1) for i, t in enumerate(prompt)])
            next_tokens.append(self.argmax(len(prompt) - 1))
        positions = [len(p) for p in prompts]
        seconds = 0.0
        for _ in range(n_new - 1):
            seconds += self.decode([(next_tokens[s], positions[s], s, True) for s in range(len(prompts))])
            next_tokens = [self.argmax(s) for s in range(len(prompts))]
            positions = [p + 1 for p in positions]
        return len(prompts) * (n_new - 1), seconds


def engine_run(binary, model, threads, prompts, n_new, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = os.path.join(tmp, "prompts.txt")
        stats_file = os.path.join(tmp, "stats.json")
        # One prompt per line: newlines inside prompts become spaces for the file format.
        with open(prompt_file, "w") as f:
            f.write("\n".join(p.replace("\n", " ") for p in prompts) + "\n")
        command = [binary, "generate", "-m", model, "-f", prompt_file, "-n", str(n_new), "--temp", "0",
                   "--ignore-eos", "-t", str(threads), "--json", "--stats-json", stats_file, *extra]
        subprocess.run(command, check=True, capture_output=True)
        return json.load(open(stats_file))


def best(values, key):
    return max(values, key=key)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "apps", "specoffload"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    common = {"date": datetime.date.today().isoformat(), "commit": commit, "device": cpu_name(),
              "threads": args.threads, "model": os.path.basename(args.model), "llama_cpp_python": llama_cpp.__version__}
    llama = LlamaCpp(args.model, args.threads, n_seq=32, n_ctx=32 * 1024)
    records = []

    # decode_1: a short prompt, 128 new tokens.
    short_prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    ours = best([engine_run(args.binary, args.model, args.threads, [short_prompt], 128) for _ in range(args.repeats)],
                key=lambda s: s["decode_tokens_per_second"])
    theirs = max(n / s for n, s in (llama.generate([llama.tokenize(short_prompt)], 128) for _ in range(args.repeats)))
    records.append({"workload": "decode_1", "engine_tok_s": ours["decode_tokens_per_second"], "llama_cpp_tok_s": theirs})

    # prefill: 512 tokens of a speech.
    tokens = llama.tokenize(speech_text())[:512]
    piece = ctypes.create_string_buffer(256)
    pieces = []
    for t in tokens:
        n = llama_cpp.llama_token_to_piece(llama.vocab, t, piece, 256, 0, True)
        pieces.append(piece.raw[:n])
    prompt_512 = b"".join(pieces).decode("utf-8", errors="ignore")
    ours = best([engine_run(args.binary, args.model, args.threads, [prompt_512], 1, ["--step-tokens", "1024"])
                 for _ in range(args.repeats)], key=lambda s: s["prefill_tokens_per_second"])
    theirs = max(len(tokens) / llama.prefill_seconds(tokens) for _ in range(args.repeats))
    records.append({"workload": "prefill_512", "engine_tok_s": ours["prefill_tokens_per_second"],
                    "engine_prompt_tokens": ours["prefill_tokens"], "llama_cpp_tok_s": theirs,
                    "llama_cpp_prompt_tokens": len(tokens)})

    # decode_32: 32 HumanEval prompts in one batch.
    prompts = humaneval_prompts(32)
    ours = best([engine_run(args.binary, args.model, args.threads, prompts, 128, ["--max-rows", "32"])
                 for _ in range(args.repeats)], key=lambda s: s["decode_tokens_per_second"])
    llama_prompts = [llama.tokenize(p.replace("\n", " ")) for p in prompts]
    theirs = max(n / s for n, s in (llama.generate(llama_prompts, 128) for _ in range(args.repeats)))
    records.append({"workload": "decode_32", "engine_tok_s": ours["decode_tokens_per_second"], "llama_cpp_tok_s": theirs})

    for record in records:
        record.update(common)
        record["ratio"] = record["engine_tok_s"] / record["llama_cpp_tok_s"]
        print(json.dumps(record))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()
