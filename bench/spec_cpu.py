"""Speculative decoding on the CPU (issue: speculative decoding), one run, side by side.

Workloads on the default model, greedy:
  code       HumanEval prompts (the `prompt` field), completed as raw text
  summarize  "Summarize the following speech: ..." over State of the Union speeches
             truncated to about 400 tokens, in the model's chat template
at batch 1 (prompts one after another) and batch 16 (one batch). For each drafter and
k in {2, 4, 6, 8} (fixed) and the adaptive rule (cap 8): alpha, tau, decode tok/s
(drafting included) and the speedup over plain decoding of the same prompts. Every
speculative run's tokens are compared with plain decoding's (greedy must match).

    python bench/spec_cpu.py [--threads 2] [--tokens 96] [--modes fixed,adaptive] [--out FILE]
"""
import argparse, datetime, json, os, subprocess, sys, tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from harness import DEFAULT_MODEL, code_prompts, cpu_name, escape, summarize_prompts  # noqa: E402
import make_draft_model  # noqa: E402

BIN = os.environ.get("SPECOFFLOAD_BIN", os.path.join(REPO, "build", "apps", "specoffload"))


def run(prompts, chat, batch, tokens, threads, extra):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(escape(p) for p in prompts) + "\n")
        prompt_file = f.name
    stats_file = prompt_file + ".stats.json"
    command = [BIN, "generate", "-m", DEFAULT_MODEL, "-f", prompt_file, "-e", "--json", "--temp", "0",
               "-n", str(tokens), "-t", str(threads), "--max-rows", str(batch), "--stats-json", stats_file]
    if chat:
        command.append("--chat")
    out = subprocess.run(command + extra, check=True, capture_output=True, text=True).stdout
    outputs = [json.loads(line)["tokens"] for line in out.splitlines()]
    stats = json.load(open(stats_file))
    os.unlink(prompt_file)
    os.unlink(stats_file)
    return outputs, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--batch1-prompts", type=int, default=6)
    parser.add_argument("--self-draft-layers", type=int, default=24)
    parser.add_argument("--draft-model-layers", type=int, default=16)
    parser.add_argument("--ks", default="2,4,6,8")
    parser.add_argument("--modes", default="fixed,adaptive", help="which settings to run: fixed (every k), adaptive")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    draft_model = os.path.join(tempfile.gettempdir(), f"specoffload-draft-{args.draft_model_layers}.gguf")
    make_draft_model.main(DEFAULT_MODEL, args.draft_model_layers, draft_model)
    drafters = {
        "ngram": ["--draft-ngram"],
        f"self-draft-{args.self_draft_layers}": ["--draft-layers", str(args.self_draft_layers)],
        f"draft-model-{args.draft_model_layers}-layers": ["--draft-model", draft_model],
    }
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    common = {"date": datetime.date.today().isoformat(), "commit": commit, "device": cpu_name(),
              "threads": args.threads, "model": os.path.basename(DEFAULT_MODEL), "tokens": args.tokens}
    records = []
    workloads = {"code": (code_prompts(16), False), "summarize": (summarize_prompts(16), True)}
    for workload, (prompts_all, chat) in workloads.items():
        for batch in (1, 16):
            prompts = prompts_all[:args.batch1_prompts] if batch == 1 else prompts_all[:16]
            plain_out, plain = run(prompts, chat, batch, args.tokens, args.threads, [])
            base = {**common, "workload": workload, "batch": batch, "prompts": len(prompts),
                    "prompt_tokens": plain["prefill_tokens"] / len(prompts)}
            plain_rate = plain["decode_tokens_per_second"]
            record = {**base, "drafter": "none", "k": 0, "decode_tok_s": plain_rate, "speedup": 1.0}
            print(json.dumps(record), flush=True)
            records.append(record)
            for drafter, flags in drafters.items():
                modes = args.modes.split(",")
                settings = ([("fixed", k) for k in map(int, args.ks.split(","))] if "fixed" in modes else []) + \
                           ([("adaptive", 8)] if "adaptive" in modes else [])
                for mode, k in settings:
                    out, stats = run(prompts, chat, batch, args.tokens, args.threads,
                                     flags + ["--draft-max", str(k), "--draft-length", mode])
                    record = {**base, "drafter": drafter, "mode": mode, "k": k,
                              "alpha": stats["acceptance_rate"], "tau": stats["tokens_per_pass"],
                              "mean_k": stats["mean_draft_length"], "decode_tok_s": stats["decode_tokens_per_second"],
                              "speedup": stats["decode_tokens_per_second"] / plain_rate,
                              "draft_seconds": stats["draft_seconds"], "verify_seconds": stats["verify_seconds"],
                              "acceptance_histogram": stats["acceptance_histogram"],
                              "greedy_equal": out == plain_out}
                    print(json.dumps(record), flush=True)
                    records.append(record)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
