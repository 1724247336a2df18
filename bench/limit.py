"""Benchmark 3, the limit: decode time per token vs weight bytes ÷ memory bandwidth.

Batch-1 decoding reads every weight once per token, so a lower bound per token is
``weight bytes / memory bandwidth``. This script measures, in each backend's own process:

* memory bandwidth: best of several ``np.copyto`` over a 1 GiB float32 array, counted as bytes
  read + bytes written (one core; the 480 MiB-L3 class of server CPU needs > L3 sizes);
* decode ms/token through KerasHub's compiled generate loop: (time for 64 new tokens - time
  for 1) / 63 in the same length bucket, so the padded prefill cancels out. This uses the
  proposed bounded decode (``bench/_proposed.py``): the shipped ``Completer`` decodes to the
  end of the bucket whatever the budget (its 64-token time is reported beside it);
* decode ms/token through ``Completer.stream`` (one compiled KV-cache step per token, in Python);
* one bare forward step of the model with its cache (``call_with_cache``), for the floor of
  the framework.

Model: a random ~23M-parameter float32 Gemma (6 layers, hidden 512, one KV head like
CodeGemma 2B), or ``--model``. Target: within 2× of the bound on the best backend.

Usage::

    python bench/limit.py              # jax, tensorflow, torch
    python bench/limit.py --tiny       # smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS_DIR, emit, machine, machine_line, median,  # noqa: E402
                     param_count, resolve_model, run_child, save_plot, table, versions,
                     weight_bytes, write_results)


def bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Bytes per second moved by ``np.copyto`` (read + write), best of ``repeats``."""
    import numpy as np

    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def child(backend: str, args: argparse.Namespace) -> None:
    import keras_hub
    import numpy as np

    from cg_helpers.completion import Completer

    if backend == "torch":
        import torch

        torch.set_num_threads(args.torch_threads)
    preset = str(resolve_model(args.model))
    from _proposed import BoundedCompleter

    lm = keras_hub.models.GemmaCausalLM.from_preset(preset, dtype="float32")
    # The bounded decode (bench/_proposed.py) stops the compiled loop at the budget; the shipped
    # Completer decodes to the end of the bucket, which would hide the per-token cost.
    c = BoundedCompleter(lm, name="bench", context_length=args.context)
    shipped = Completer(keras_hub.models.GemmaCausalLM.from_preset(preset, dtype="float32"),
                        name="bench", context_length=args.context)
    before, after = "def mean(values):\n    ", "\n\nprint(mean([1, 2, 3]))\n"
    n = args.new_tokens
    bw_before = bandwidth(args.copy_bytes)
    c.complete(before, after, max_new_tokens=1)                       # compile
    c.complete(before, after, max_new_tokens=n)
    "".join(c.stream(before, after, max_new_tokens=n))               # compile the step
    one, full, stream_steps, gen = [], [], [], []
    for _ in range(args.repeats):
        r1 = c.complete(before, after, max_new_tokens=1)
        rn = c.complete(before, after, max_new_tokens=n)
        one.append(r1.seconds)
        full.append(rn.seconds)
        gen.append(rn.generated_tokens)
        s = c.stream(before, after, max_new_tokens=n)
        t_first, t0 = None, time.perf_counter()
        for _piece in s:
            if t_first is None:
                t_first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        k = s.result.generated_tokens
        if k > 1:
            stream_steps.append((total - t_first) / max(1, k - 1))
    bucket = rn.bucket
    shipped.complete(before, after, max_new_tokens=n)
    shipped_s = median(shipped.complete(before, after, max_new_tokens=n).seconds
                       for _ in range(args.repeats))
    # Bare cached forward step at the same bucket (what a decode step costs the framework).
    prefill, step = c._stream_fns()
    ids = np.zeros((1, bucket), dtype="int32")
    cache = prefill(ids)
    tok = np.asarray([[5]], dtype="int32")
    step(tok, cache, np.asarray(3, dtype="int32"))
    bare = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(16):
            logits, cache = step(tok, cache, np.asarray(4 + i, dtype="int32"))
        np.asarray(logits)
        bare.append((time.perf_counter() - t0) / 16)
    bw_after = bandwidth(args.copy_bytes)
    decoded = median(gen) - 1
    emit({"backend": backend, "preset": preset, "params": param_count(lm),
          "weight_bytes": weight_bytes(lm), "bandwidth": max(bw_before, bw_after),
          "bandwidth_samples": [bw_before, bw_after], "one_s": median(one),
          "full_s": median(full), "generated": median(gen), "bucket": bucket,
          "shipped_full_s": shipped_s,
          "decode_ms": 1000 * (median(full) - median(one)) / max(1, decoded),
          "stream_step_ms": 1000 * median(stream_steps) if stream_steps else None,
          "bare_step_ms": 1000 * median(bare)})


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        bound_ms = 1000 * r["weight_bytes"] / r["bandwidth"]
        rows.append({
            "backend": r["backend"], "params_M": r["params"] / 1e6,
            "weights_MB": r["weight_bytes"] / 1e6, "bandwidth_GB/s": r["bandwidth"] / 1e9,
            "bound_ms": bound_ms, "decode_ms(generate)": r["decode_ms"],
            "x_bound(generate)": r["decode_ms"] / bound_ms,
            "step_ms(stream)": r["stream_step_ms"] or float("nan"),
            "x_bound(stream)": (r["stream_step_ms"] or float("nan")) / bound_ms,
            "bare_step_ms": r["bare_step_ms"], "x_bound(bare)": r["bare_step_ms"] / bound_ms,
            "tokens": r["generated"], "bucket": r["bucket"],
            "64tok_s(bounded)": r["full_s"], "64tok_s(shipped)": r["shipped_full_s"],
        })
    return rows


def plot(rows: list[dict], out_dir: Path, m: dict, note: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = np.arange(len(rows))
    w = 0.2
    ax.bar(x - 1.5 * w, [r["bound_ms"] for r in rows], w, label="bound: weights / bandwidth",
           color="#999999")
    ax.bar(x - 0.5 * w, [r["decode_ms(generate)"] for r in rows], w, label="decode (generate)")
    ax.bar(x + 0.5 * w, [r["step_ms(stream)"] for r in rows], w, label="step (stream loop)")
    ax.bar(x + 1.5 * w, [r["bare_step_ms"] for r in rows], w, label="bare cached step")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['x_bound(generate)']:.1f}×", (i - 0.5 * w, r["decode_ms(generate)"]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [r["backend"] for r in rows])
    ax.set_ylabel("ms per token")
    ax.set_title(f"Decode vs memory-bandwidth bound ({rows[0]['params_M']:.0f}M params, "
                 f"{rows[0]['weights_MB']:.0f} MB float32)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_plot(fig, "limit", out_dir, m, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    p.add_argument("--model", default="medium")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--copy-bytes", type=int, default=1 << 30)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.repeats, args.new_tokens, args.backends = 1, 8, args.backends[:1]
        args.copy_bytes = 64 << 20
        args.model = "tiny" if args.model == "medium" else args.model
    if args.child:
        child(args.child, args)
        return 0
    m = machine()
    args.model = str(resolve_model(args.model))     # one snapshot for every child process
    child_args = ["--model", args.model, "--new-tokens", str(args.new_tokens),
                  "--context", str(args.context), "--repeats", str(args.repeats),
                  "--copy-bytes", str(args.copy_bytes), "--torch-threads", str(args.torch_threads)]
    results = [run_child(Path(__file__), b, child_args, nice=args.nice) for b in args.backends]
    rows = summarise(results)
    best = min(rows, key=lambda r: r["decode_ms(generate)"])
    note = (f"model: {results[0]['preset']}; torch threads {args.torch_threads}; "
            f"nice -n {args.nice}; {versions()}")
    md = "\n".join([
        "# Limit benchmark: decode vs memory bandwidth", "", f"Machine: {machine_line(m)}", "",
        note, "", table(rows), "",
        f"Best backend: {best['backend']}, {best['decode_ms(generate)']:.2f} ms/token = "
        f"{best['x_bound(generate)']:.1f}× the bound ({best['bound_ms']:.2f} ms).",
        "`bound_ms`: weight bytes / copy bandwidth (read+write, one core). "
        "`decode_ms(generate)`: (64 tokens - 1 token) / 63 through the compiled generate loop "
        "with the proposed bounded decode. `64tok_s`: one 64-token completion, bounded vs the "
        "shipped Completer (which decodes to the end of the 128 bucket). "
        "`step_ms(stream)`: per-token time of Completer.stream after the first piece. "
        "`bare_step_ms`: one compiled call_with_cache step, no sampling or Python loop."])
    print(md)
    if not args.tiny or args.out != RESULTS_DIR:
        write_results(args.out, "limit", md, rows, {"machine": m, "results": results})
        print("plot:", plot(rows, args.out, m, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
