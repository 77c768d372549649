"""Times llama.cpp (the llama_cpp Python package, low-level API so Python costs little) on a
GGUF model: single-token decode, a 512-token prompt, and 32 sequences decoding together.
It is the bar the CPU kernels are measured against.

  python bench/kernels/llama_cpp_calibration.py [model.gguf] [n_threads]

Prints one JSON record; each number is the best of several repetitions.
"""
import json
import os
import sys
import time

import llama_cpp


def main():
    model_path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/specoffload/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    n_threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), model_params)
    n_seq = 32
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = 4096
    params.n_batch = 512
    params.n_ubatch = 512
    params.n_seq_max = n_seq
    params.kv_unified = True
    params.n_threads = n_threads
    params.n_threads_batch = n_threads
    ctx = llama_cpp.llama_init_from_model(model, params)
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    prompt = [(i * 7919) % (vocab - 100) + 50 for i in range(512)]
    batch = llama_cpp.llama_batch_init(512, 0, n_seq)
    memory = llama_cpp.llama_get_memory(ctx)

    def decode(entries):  # entries: (token, pos, seq, wants_logits)
        batch.n_tokens = len(entries)
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        start = time.perf_counter()
        rc = llama_cpp.llama_decode(ctx, batch)
        elapsed = time.perf_counter() - start
        assert rc == 0, rc
        return elapsed

    def prefill():
        llama_cpp.llama_memory_clear(memory, True)
        return decode([(t, p, 0, p == 511) for p, t in enumerate(prompt)])

    def single(steps=64):
        llama_cpp.llama_memory_clear(memory, True)
        decode([(t, p, 0, p == 15) for p, t in enumerate(prompt[:16])])
        return min(decode([(prompt[16 + s], 16 + s, 0, True)]) for s in range(steps))

    def batched(steps=16):
        llama_cpp.llama_memory_clear(memory, True)
        return min(decode([(prompt[(s * 13 + step) % 512], step, s, True) for s in range(n_seq)])
                   for step in range(steps))

    prefill_s = min(prefill() for _ in range(5))
    single_s = min(single() for _ in range(5))
    batched_s = min(batched() for _ in range(3))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    print(json.dumps({
        "engine": "llama.cpp " + llama_cpp.__version__,
        "model": os.path.basename(model_path),
        "n_threads": n_threads,
        "decode_tokens_per_s": round(1 / single_s, 1),
        "prefill_512_tokens_per_s": round(512 / prefill_s, 1),
        "batched_32_tokens_per_s": round(n_seq / batched_s, 1),
    }))


if __name__ == "__main__":
    main()
