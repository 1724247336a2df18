"""Benchmark 2, streaming: time to the first piece vs total time for a 64-token completion.

``Completer.stream`` (prefill once, then one compiled KV-cache step per token) against
``Completer.complete`` (KerasHub's compiled ``generate``), on the same model and prompt, after a
warm-up call of each (compiles are excluded: they are benchmark 1's subject). Median of
``--repeats`` runs per backend, each backend in its own process.

Target: the first piece arrives in at most 10 % of the total time.

Usage::

    python bench/streaming.py                   # jax, tensorflow, torch
    python bench/streaming.py --tiny            # smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS_DIR, emit, machine, machine_line, median,  # noqa: E402
                     param_count, resolve_model, run_child, save_plot, table, versions,
                     write_results)


def child(backend: str, args: argparse.Namespace) -> None:
    import keras_hub

    from cg_helpers.completion import Completer
    from cg_helpers.tiny_model import builtin_corpus

    if backend == "torch":
        import torch

        torch.set_num_threads(args.torch_threads)
    preset = str(resolve_model(args.model))
    lm = keras_hub.models.GemmaCausalLM.from_preset(preset)
    c = Completer(lm, name="bench", context_length=args.context)
    text = builtin_corpus(1)[0]
    pos = len(text) // 2
    n = args.new_tokens
    cases = []
    for chars in args.prompt_chars:
        before, after = text[pos - chars:pos], text[pos:pos + chars // 4]
        t0 = time.perf_counter()
        c.complete(before, after, max_new_tokens=n)
        warm_complete = time.perf_counter() - t0
        t0 = time.perf_counter()
        "".join(c.stream(before, after, max_new_tokens=n))
        warm_stream = time.perf_counter() - t0
        rows = []
        for _ in range(args.repeats):
            r = c.complete(before, after, max_new_tokens=n)
            s = c.stream(before, after, max_new_tokens=n)
            t0 = time.perf_counter()
            first = None
            pieces = 0
            for _piece in s:
                pieces += 1
                if first is None:
                    first = time.perf_counter() - t0
            total = time.perf_counter() - t0
            rows.append({"complete_s": r.seconds, "complete_tokens": r.generated_tokens,
                         "stream_first_s": first, "stream_total_s": total,
                         "stream_tokens": s.result.generated_tokens, "pieces": pieces,
                         "same_text": s.result.middle == r.middle,
                         "prompt_tokens": r.prompt_tokens, "bucket": r.bucket})
        cases.append({"rows": rows, "warm_complete_s": warm_complete,
                      "warm_stream_s": warm_stream})
    emit({"backend": backend, "preset": preset, "params": param_count(lm), "cases": cases})


def summarise(results: list[dict]) -> list[dict]:
    out = []
    for res in results:
        for case in res["cases"]:
            rows = case["rows"]
            comp = median(r["complete_s"] for r in rows)
            first = median(r["stream_first_s"] for r in rows)
            total = median(r["stream_total_s"] for r in rows)
            out.append({
                "backend": res["backend"], "prompt_tok": rows[0]["prompt_tokens"],
                "bucket": rows[0]["bucket"], "new_tok": rows[0]["stream_tokens"],
                "complete_s": comp, "stream_first_s": first, "stream_total_s": total,
                "first/stream_total": first / total, "first/complete": first / comp,
                "stream/complete": total / comp,
                "identical": all(r["same_text"] for r in rows),
                "first_call_complete_s": case["warm_complete_s"],
                "first_call_stream_s": case["warm_stream_s"],
            })
    return out


def plot(rows: list[dict], out_dir: Path, m: dict, note: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(10, 4.6))
    x = np.arange(len(rows))
    w = 0.27
    ax.bar(x - w, [r["complete_s"] for r in rows], w, label="complete: total")
    ax.bar(x, [r["stream_total_s"] for r in rows], w, label="stream: total")
    ax.bar(x + w, [r["stream_first_s"] for r in rows], w, label="stream: first piece")
    for i, r in enumerate(rows):
        ax.annotate(f"{100 * r['first/stream_total']:.0f}%", (i + w, r["stream_first_s"]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{r['backend']}\n{r['prompt_tok']}-token prompt" for r in rows],
                  fontsize=7)
    ax.set_ylabel("seconds (median, compiled)")
    ax.set_title(f"Streaming: first piece vs total, {rows[0]['new_tok']} new tokens")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_plot(fig, "streaming", out_dir, m, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    p.add_argument("--model", default="auto")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--prompt-chars", type=int, nargs="+", default=[50, 600],
                   help="characters before the cursor (a quarter as many after), one case each")
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.repeats, args.new_tokens, args.backends = 1, 8, args.backends[:1]
        args.prompt_chars = args.prompt_chars[:1]
        args.model = "tiny" if args.model == "auto" else args.model
    if args.child:
        child(args.child, args)
        return 0
    m = machine()
    args.model = str(resolve_model(args.model))     # one snapshot for every child process
    child_args = ["--model", args.model, "--new-tokens", str(args.new_tokens),
                  "--prompt-chars", *map(str, args.prompt_chars), "--context", str(args.context),
                  "--repeats", str(args.repeats), "--torch-threads", str(args.torch_threads)]
    results = [run_child(Path(__file__), b, child_args, nice=args.nice) for b in args.backends]
    rows = summarise(results)
    note = (f"model: {results[0]['preset']} ({results[0]['params'] / 1e6:.1f}M params, float32); "
            f"torch threads {args.torch_threads}; nice -n {args.nice}; {versions()}")
    md = "\n".join(["# Streaming benchmark", "", f"Machine: {machine_line(m)}", "", note, "",
                    table(rows), "",
                    "Medians of the compiled runs. `first/stream_total` is the target ratio "
                    "(≤ 0.10). `identical`: the streamed text equals complete()'s middle. "
                    "`first_call_*`: the first (compiling) call, excluded from the medians."])
    print(md)
    if not args.tiny or args.out != RESULTS_DIR:
        write_results(args.out, "streaming", md, rows, {"machine": m, "results": results})
        print("plot:", plot(rows, args.out, m, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
