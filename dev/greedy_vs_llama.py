"""Quick check: greedy continuations of this engine vs llama.cpp on the default model.

Usage: python dev/greedy_vs_llama.py [N_PROMPTS] [N_TOKENS]
Feeds llama.cpp the engine's prompt_tokens, so only the forward pass is compared.
"""
import json, os, subprocess, sys
import numpy as np
from llama_cpp import Llama

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model = os.path.expanduser("~/.cache/specoffload/models/SmolLM2-135M-Instruct.Q4_1.gguf")
n_prompts = int(sys.argv[1]) if len(sys.argv) > 1 else 8
n_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 64
prompts = [l.strip() for l in open(os.path.join(repo, "data/prompts.txt")) if l.strip()][:n_prompts]
path = "/tmp/greedy_prompts.txt"
open(path, "w").write("\n".join(prompts) + "\n")
out = subprocess.run([os.path.join(repo, "build/apps/specoffload"), "generate", "-m", model, "-f", path, "--chat",
                      "-n", str(n_tokens), "--temp", "0", "--json", "--ignore-eos"], capture_output=True, text=True)
print(out.stderr.strip().splitlines()[-1])
ours = [json.loads(l) for l in out.stdout.splitlines()]
llm = Llama(model_path=model, n_ctx=2048, n_threads=2, logits_all=True, verbose=False)
same = 0
for record in ours:
    llm.reset()
    tokens = list(record["prompt_tokens"])
    llm.eval(tokens)
    ref = []
    gaps = []
    for _ in range(n_tokens):
        logits = np.array(llm.scores[llm.n_tokens - 1])
        top2 = np.sort(logits)[-2:]
        token = int(np.argmax(logits))
        ref.append(token)
        gaps.append(float(top2[1] - top2[0]))
        llm.eval([token])
    mismatch = next((i for i, (a, b) in enumerate(zip(record["tokens"], ref)) if a != b), None)
    if mismatch is None:
        same += 1
    else:
        print(f"prompt {record['index']}: first mismatch at {mismatch}, llama.cpp top-2 gap {gaps[mismatch]:.4f}")
print(f"{same}/{len(ours)} identical over {n_tokens} tokens")
