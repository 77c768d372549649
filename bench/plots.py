#!/usr/bin/env python3
"""The benchmark report's plots (issue 7), from the JSON under bench/results/ (the newest file of each kind):

  rows.png        decode tokens/s vs rows per pass, with the copy-bound limit rows * BW / W of plain streaming
  draft.png       decode tokens/s vs draft length k, serial and interleaved, plain streaming as the baseline
  budget.png      decode tokens/s vs device memory: target alone vs target + draft sharing the memory
  length.png      tokens/s (prefill included and decode) vs tokens generated per prompt
  timeline.png    a few passes of one interleaved run: copy engine, target compute, draft, disk reads
  ablation.png    the offload ablation (bench/offload_cpu.py) per workload and link
  cpu_vs_llama.png  this engine vs llama.cpp on the CPU (bench/cpu_vs_llama.py)
  gpu.png         the GPU run at Mixtral scale against accelerate and the physical bound (bench/gpu_offload.py)
  host_kv.png     decode tokens/s vs rows with the KV cache on the device or in host memory (bench/host_kv_cpu.py)

    python3 bench/plots.py [--results bench/results] [--out docs/img]
"""
import argparse
import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def newest(results, pattern):
    files = sorted(glob.glob(os.path.join(results, pattern)))
    return files[-1] if files else None


def load(path):
    with open(path) as f:
        return json.load(f)


def finish(fig, ax, out, name, title):
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=130)
    plt.close(fig)
    print(os.path.join(out, name))


def subtitle(record):
    return (f"{record['model']} ({record['dtype']}) streamed over a simulated {record['sim_link_gbps']} GB/s link\n"
            f"{record['device']}, {record['date']}")


def plot_configs(ax, records, styles, x_of, y="decode_tokens_per_second"):
    """One line per (config, marker style): y against x_of(record), in x order."""
    for config, style in styles:
        points = sorted((x_of(r), r[y]) for r in records if r["config"] == config)
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=config)


def plot_rows(records, out):
    rows = [r for r in records if r["sweep"] == "rows"]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_configs(ax, rows, (("no speculation", "o-"), ("speculation, serial", "s-"), ("speculation, interleaved", "^-")),
                 lambda r: r["rows"])
    plain = [r for r in rows if r["config"] == "no speculation"]
    streamed = plain[0]["streamed_bytes"] / max(1, plain[0]["passes"])
    link = plain[0]["sim_link_gbps"] * 1e9
    xs = sorted(r["rows"] for r in plain)
    ax.plot(xs, [x * link / streamed for x in xs], "k--", lw=1, label="copy-bound limit of plain streaming")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("rows per pass (sequences generating at once)")
    ax.set_ylabel("decode tokens/s (all rows)")
    finish(fig, ax, out, "rows.png", "Throughput vs rows per pass\n" + subtitle(rows[0]))


def plot_draft(records, out):
    draft = [r for r in records if r["sweep"] == "draft"]
    if not draft:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plain = next(r for r in draft if r["config"] == "no speculation")
    plot_configs(ax, draft, (("speculation, serial", "s-"), ("speculation, interleaved", "^-")), lambda r: r["k"])
    ax.axhline(plain["decode_tokens_per_second"], color="k", ls="--", lw=1, label="no speculation")
    alpha = sum(r["alpha"] for r in draft if r["k"]) / max(1, sum(1 for r in draft if r["k"]))
    ax.set_xlabel(f"draft length k (fixed; measured acceptance alpha ~ {alpha:.2f})")
    ax.set_ylabel("decode tokens/s (16 rows)")
    finish(fig, ax, out, "draft.png", "Throughput vs draft length\n" + subtitle(draft[0]))


def plot_budget(records, out):
    budget = [r for r in records if r["sweep"] == "budget"]
    if not budget:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_configs(ax, budget, (("target only", "o-"), ("target + draft in the same memory", "s-")),
                 lambda r: r["device_bytes"] / 2**20)
    ax.axvline(budget[0]["target_bytes"] / 2**20, color="gray", ls=":", lw=1, label="the whole target")
    ax.set_xlabel("device memory for weights (MiB)")
    ax.set_ylabel("decode tokens/s (16 rows)")
    finish(fig, ax, out, "budget.png", "Throughput vs device memory: more resident layers or a draft?\n" +
           subtitle(budget[0]))


def plot_length(records, out):
    length = [r for r in records if r["sweep"] == "length"]
    if not length:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for config, color in (("no speculation", "tab:blue"), ("speculation, serial", "tab:orange")):
        points = sorted((r["tokens"], r["tokens_per_second"], r["decode_tokens_per_second"]) for r in length
                        if r["config"] == config)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=color, label=f"{config}, prefill included")
        ax.plot([p[0] for p in points], [p[2] for p in points], "o--", color=color, label=f"{config}, decode only")
    ax.set_xscale("log", base=2)
    ax.set_xticks([16, 32, 64, 128], ["16", "32", "64", "128"])
    ax.set_xlabel("tokens generated per prompt (mixed workload: HumanEval and speeches, 16 rows)")
    ax.set_ylabel("tokens/s")
    finish(fig, ax, out, "length.png", "Throughput vs generation length\n" + subtitle(length[0]))


def plot_timeline(trace_path, out):
    events = load(trace_path)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = [e for e in events if e["ph"] == "X"]
    passes = sorted((e for e in spans if names.get(e["tid"]) == "passes"), key=lambda e: e["ts"])
    if len(passes) < 6:
        return
    middle = len(passes) // 2
    start, end = passes[middle]["ts"], passes[middle + 3]["ts"] + passes[middle + 3]["dur"]
    in_window = [e for e in spans if e["ts"] + e["dur"] > start and e["ts"] < end]
    tracks = [tid for tid, name in sorted(names.items())
              if name != "passes" and any(e["tid"] == tid for e in in_window)]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.7 * len(tracks)))
    colors = {"compute (target)": "tab:blue", "copy engine (host to device)": "tab:orange", "draft": "tab:green",
              "disk reads (file to host)": "tab:purple"}
    for row, tid in enumerate(tracks):
        bars = [((e["ts"] - start) / 1e3, e["dur"] / 1e3) for e in spans
                if e["tid"] == tid and e["ts"] + e["dur"] > start and e["ts"] < end]
        waits = [b for b, e in zip(bars, [e for e in spans if e["tid"] == tid and e["ts"] + e["dur"] > start
                                          and e["ts"] < end]) if e["name"].startswith("wait")]
        ax.broken_barh([b for b in bars if b not in waits], (row - 0.35, 0.7), color=colors.get(names[tid], "gray"))
        if waits:
            ax.broken_barh(waits, (row - 0.35, 0.7), color="lightgray", label="target waits for a layer")
    for e in passes[middle:middle + 4]:
        ax.axvline((e["ts"] - start) / 1e3, color="k", lw=0.5, ls=":")
    ax.set_yticks(range(len(tracks)), [names[t] for t in tracks])
    ax.set_xlim(0, (end - start) / 1e3)
    ax.set_xlabel("milliseconds (dotted lines: pass boundaries)")
    ax.set_title("Four passes of an interleaved run: the draft works while the target waits for streamed layers",
                 fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:1], labels[:1], fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "timeline.png"), dpi=130)
    plt.close(fig)
    print(os.path.join(out, "timeline.png"))


def plot_ablation(paths, out):
    groups = [r for path in paths for r in load(path)["records"]]
    if not groups:
        return
    keys = sorted({(r["workload"], r["sim_link_gbps"]) for r in groups})
    # note: the planned run is named by the schedule the planner chose; the forced other one by its own.
    label = lambda r: "full system (planned)" if r["config"].startswith("full (") else {  # noqa: E731
        "full-serial": "planned rows and k, forced serial", "full-interleaved": "planned rows and k, forced interleaved",
        "no-spec": "no speculation", "flexgen-like": "FlexGen-like (all prompts in a batch)",
        "default-plan": "default flags with the draft"}.get(r["config"], r["config"])
    names = [n for n in ("no speculation", "FlexGen-like (all prompts in a batch)", "default flags with the draft",
                         "planned rows and k, forced serial", "planned rows and k, forced interleaved",
                         "full system (planned)") if any(label(r) == n for r in groups)]
    fig, ax = plt.subplots(figsize=(max(9, 1.8 * len(keys)), 4.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = []
        for key in keys:
            match = [r for r in groups if (r["workload"], r["sim_link_gbps"]) == key and label(r) == name]
            values.append(match[0]["tokens_per_second"] if match else 0)
        ax.bar([k + (i - (len(names) - 1) / 2) * width for k in range(len(keys))], values, width, label=name)
    ax.set_xticks(range(len(keys)), [f"{w}\n{g} GB/s link" for w, g in keys])
    ax.set_ylabel("tokens/s, prefill included")
    sample = groups[0]
    finish(fig, ax, out, "ablation.png",
           f"Offload ablation: {sample['target']} streamed ({sample['target_bytes'] / 2**20:.0f} MiB, device budget "
           f"{int(sample['device_budget'][:-1]) / 1024:.0f} MiB),\ndraft {sample['draft']}; {sample['device']}, "
           f"{sample['date']}")


def plot_cpu_vs_llama(paths, out):
    """One panel per results file (a machine and a date each), newest last."""
    runs = []
    for path in paths:
        records = load(path)
        records = records if isinstance(records, list) else records.get("records", [])
        if records:
            runs.append(records)
    if not runs:
        return
    labels = {"decode_1": "decode,\n1 sequence", "prefill_512": "prefill,\n512-token prompt",
              "decode_32": "decode,\n32 rows"}
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4.4), sharey=True, squeeze=False)
    for ax, records in zip(axes[0], runs):
        xs = range(len(records))
        ours = [r["engine_tok_s"] for r in records]
        theirs = [r["llama_cpp_tok_s"] for r in records]
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="specoffload")
        ax.bar([x + 0.2 for x in xs], theirs, 0.4, label="llama.cpp (llama-cpp-python)")
        for x, a, b in zip(xs, ours, theirs):
            ax.annotate(f"{a / b:.2f}x", (x, max(a, b)), ha="center", va="bottom", fontsize=9)
        ax.set_xticks(list(xs), [labels.get(r["workload"], r["workload"]) for r in records], fontsize=9)
        ax.set_title(f"{records[0]['device']}, {records[0]['threads']} threads, {records[0]['date']}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(0, 1.12 * max(ours + theirs))
    axes[0][0].set_ylabel("tokens/s")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=9)
    fig.suptitle(f"CPU: this engine vs llama.cpp on {runs[0][0]['model']} (ratio: ours over llama.cpp)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(os.path.join(out, "cpu_vs_llama.png"), dpi=130)
    plt.close(fig)
    print(os.path.join(out, "cpu_vs_llama.png"))


def plot_gpu(path, out):
    data = load(path)
    runs = [r for key in ("run_a", "run_b") for r in data.get(key, []) if "decode_tokens_per_second" in r]
    if not runs:
        return
    # No-speculation runs of the two sessions: their mean; speculative runs ordered by alpha.
    plain = [r for r in runs if r["name"] == "no speculation"]
    spec = sorted((r for r in runs if r["name"] != "no speculation"), key=lambda r: r["name"])
    peak = next(r["copy_pinned_gbps"] for key in ("run_a", "run_b") for r in data.get(key, []) if r["name"] == "profile")
    plain_bound = data["rows"] * peak * 1e9 / plain[0]["streamed_bytes_per_pass"]  # tau = 1
    bars = [("no speculation", sum(r["decode_tokens_per_second"] for r in plain) / len(plain), plain_bound)]
    bars += [(r["name"].replace("draft mistral-7b, ", ""), r["decode_tokens_per_second"],
              r.get("physical_bound_tokens_per_second")) for r in spec]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = range(len(bars))
    ax.bar([x - 0.2 for x in xs], [b[1] for b in bars], 0.4, label="this engine, measured")
    ax.bar([x + 0.2 for x in xs], [b[2] or 0 for b in bars], 0.4, label="physical bound B*tau*BW/W", alpha=0.5)
    accelerate = data.get("accelerate", {})
    tps = accelerate.get("decode_tokens_per_second") or accelerate.get("tokens_per_second")
    if tps:
        ax.axhline(tps, color="r", ls="--", label=f"HF transformers + accelerate device_map: {tps:.2f}")
    ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=9)
    ax.set_ylabel("decode tokens/s (32 rows)")
    finish(fig, ax, out, "gpu.png", f"Mixtral-8x7B-shaped bf16 target streamed under --gpu-mem {data.get('gpu_mem')}, "
           f"Mistral-7B draft\n{data['device'].split(',')[0]}, {data['date']} (dummy weights, simulated acceptance)")


def plot_host_kv(path, out):
    records = load(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    # note: host first, so the device's hollow markers show where the two coincide.
    for placement, style, extra in (("host", "s-", {}), ("device", "o-", {"mfc": "none", "ms": 11, "lw": 2.5})):
        points = sorted((r["rows"], r["steady_decode_tokens_per_second"]) for r in records
                        if r["kv_cache"] == placement and r.get("fits"))
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=f"KV cache in {placement} memory", **extra)
        refused = [r["rows"] for r in records if r["kv_cache"] == placement and not r.get("fits")]
        if refused:
            ax.plot(refused, [0] * len(refused), "x", color="r", ms=9,
                    label=f"{placement} KV does not fit the {records[0]['gpu_mem']} device")
    bound = sorted((r["rows"], r["bound_tokens_per_second"]) for r in records
                   if r["kv_cache"] == "host" and r.get("fits"))
    ax.plot([p[0] for p in bound], [p[1] for p in bound], "k--", alpha=0.6, label="bound rows * BW / W (copy-bound)")
    ax.set_xscale("log", base=2)
    ax.set_xticks([r for r in sorted({r["rows"] for r in records})], [str(r) for r in sorted({r["rows"] for r in records})])
    ax.set_xlabel("rows per pass")
    ax.set_ylabel("decode tokens/s (passes carrying every row)")
    first = next(r for r in records if r.get("fits"))
    finish(fig, ax, out, "host_kv.png",
           f"{first['model']} streamed over a simulated {first['link_gbps']} GB/s link, {first['gpu_mem']} device\n"
           f"{first['device']}, {first['date']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "img"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sweeps = newest(args.results, "sweeps_cpu_*.json")
    if sweeps:
        records = load(sweeps)
        plot_rows(records, args.out)
        plot_draft(records, args.out)
        plot_budget(records, args.out)
        plot_length(records, args.out)
    trace = newest(args.results, "timeline_trace*.json")
    if trace:
        plot_timeline(trace, args.out)
    ablation = sorted(glob.glob(os.path.join(args.results, "offload_cpu_*.json")))
    if ablation:
        plot_ablation(ablation, args.out)
    llama = sorted(glob.glob(os.path.join(args.results, "cpu_vs_llama_*.json")))
    if llama:
        plot_cpu_vs_llama(llama, args.out)
    gpu = [path for path in sorted(glob.glob(os.path.join(args.results, "gpu_offload_*.json"))) if "host_kv" not in path]
    if gpu:
        plot_gpu(gpu[-1], args.out)
    host_kv = newest(args.results, "host_kv_cpu_*.json")
    if host_kv:
        plot_host_kv(host_kv, args.out)


if __name__ == "__main__":
    main()
