"""Benchmark 1, compile-once: 20 FIM completions, three ways, on JAX and TensorFlow.

(a) the seed tutorial's way: ``lm.generate(prompt, max_length=128, stop_token_ids=[...])``
    for every call (a list of stop ids, as in the tutorial);
(b) "correct but naive": ``lm.generate(prompt, max_length=len(prompt)+budget)``, exact length;
(c) ``cg_helpers.completion.Completer.complete`` (length buckets, one stop tuple);
(c3) the Completer with the proposed bounded decode (``bench/_proposed.py``): the compiled loop
     stops each row at its budget instead of running to the end of the bucket;
(c4) (c3) with finer buckets (factor 2 instead of 4: 128, 256, ..., 4096);
(c2) (optional) the shipped Completer with factor-2 buckets.

Requests: prompt lengths log-spread from a few tokens to about ``--max-prompt`` (2,000) tokens,
budgets from 8 to 128 new tokens, cut from Python source in a fixed seeded order. Each way gets a
freshly loaded model (no shared compile caches); each backend runs in its own process.

A completion is *correct* when it equals the greedy completion with full context, which is
(b)'s output by construction (exact length, nothing truncated). The table reports total time,
compiles (real ones: XLA compiles on JAX, traces on TensorFlow), correct completions and, for
(a), how many prompts lost their suffix to the packer's truncation.

Usage::

    python bench/compile_once.py                  # both backends, 20 requests (minutes)
    python bench/compile_once.py --tiny           # smoke test: tiny model, 3 requests, JAX
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (RESULTS_DIR, CompileCounter, emit, machine, machine_line,  # noqa: E402
                     resolve_model, run_child, save_plot, table, tf_traces, versions,
                     write_results)

SEED_MAX_LENGTH = 128
METHODS = ("a_seed_128", "b_exact_length", "c_completer", "c3_bounded", "c4_bounded_fine",
           "c2_completer_fine")
DEFAULT_METHODS = METHODS[:5]
LABELS = {"a_seed_128": "(a) seed: max_length=128",
          "b_exact_length": "(b) exact max_length",
          "c_completer": "(c) Completer",
          "c3_bounded": "(c3) Completer + bounded decode (now shipped)",
          "c4_bounded_fine": "(c4) = (c3) with factor-2 buckets",
          "c2_completer_fine": "(c2) Completer, factor-2 buckets"}


def make_requests(tokenizer, n: int, max_prompt: int, seed: int = 0
                  ) -> list[tuple[str, str, int]]:
    """``n`` (before, after, budget) cut from stdlib source; prompt tokens log-spread 4..max."""
    from cg_helpers.tiny_model import builtin_corpus
    from cg_helpers.fim import count_tokens, fim_prompt

    rng = random.Random(seed)
    texts = [t for t in builtin_corpus() if len(t) > 20000]
    count = count_tokens(tokenizer)
    sample = texts[0][:20000]
    chars_per_token = len(sample) / max(1, count([sample])[0])
    budgets = [8, 16, 32, 64, 128]
    out = []
    for i in range(n):
        frac = i / max(1, n - 1)
        target = int(round(math.exp(math.log(4) + frac * (math.log(max_prompt) - math.log(4)))))
        text = rng.choice(texts)
        n_before = max(1, int(target * 0.8 * chars_per_token))
        n_after = int(target * 0.2 * chars_per_token)
        pos = rng.randrange(n_before, len(text) - n_after - 1)
        before, after = text[pos - n_before:pos], text[pos:pos + n_after]
        while count([fim_prompt(before, after)])[0] > max_prompt:
            before, after = before[len(before) // 10:], after[:int(len(after) * 0.9)]
        out.append((before, after, budgets[rng.randrange(len(budgets))]))
    order = list(range(n))
    rng.shuffle(order)            # fixed seeded order, lengths mixed
    return [out[i] for i in order]


def child(backend: str, args: argparse.Namespace) -> None:
    import keras_hub

    from cg_helpers.completion import Completer, default_buckets
    from cg_helpers.fim import FIM_STOP_TOKENS, extract_middle, fim_prompt

    preset = str(resolve_model(args.model))
    load = lambda: keras_hub.models.GemmaCausalLM.from_preset(preset)  # noqa: E731
    probe = load()
    tok = probe.preprocessor.tokenizer
    stop_list = [int(tok.token_to_id(t)) for t in FIM_STOP_TOKENS]
    requests = make_requests(tok, args.n, args.max_prompt, args.seed)
    prompt_tokens = [len(tok.tokenize(fim_prompt(b, a))) + 1 for b, a, _ in requests]
    counter = CompileCounter()
    ctx = args.context
    result: dict = {"backend": backend, "preset": preset, "n": args.n,
                    "prompt_tokens": prompt_tokens, "budgets": [r[2] for r in requests],
                    "methods": {}}

    def run(method: str) -> None:
        lm = load()
        completer = None
        if method == "c_completer":
            completer = Completer(lm, name="bench", context_length=ctx)
        elif method == "c3_bounded":
            from _proposed import BoundedCompleter

            completer = BoundedCompleter(lm, name="bench", context_length=ctx)
        elif method == "c4_bounded_fine":
            from _proposed import BoundedCompleter

            completer = BoundedCompleter(lm, name="bench", context_length=ctx,
                                         buckets=default_buckets(ctx, factor=2))
        elif method == "c2_completer_fine":
            completer = Completer(lm, name="bench", context_length=ctx,
                                  buckets=default_buckets(ctx, factor=2))
        middles, times = [], []
        traces = 0
        counter.start()
        t_all = time.perf_counter()
        for (before, after, budget), n_tok in zip(requests, prompt_tokens):
            t0 = time.perf_counter()
            if method == "a_seed_128":
                out = lm.generate(fim_prompt(before, after), max_length=SEED_MAX_LENGTH,
                                  stop_token_ids=stop_list, strip_prompt=True)
                middle = extract_middle(out)
            elif method == "b_exact_length":
                out = lm.generate(fim_prompt(before, after), max_length=n_tok + budget,
                                  stop_token_ids=tuple(stop_list), strip_prompt=True)
                middle = extract_middle(out)
            else:
                middle = completer.complete(before, after, max_new_tokens=budget).middle
            times.append(time.perf_counter() - t0)
            middles.append(middle)
            if backend == "tensorflow":
                traces = tf_traces(lm)
        total = time.perf_counter() - t_all
        counter.stop()
        compiles = counter.count if backend == "jax" else traces
        result["methods"][method] = {
            "total_s": total, "times": times, "middles": middles, "compiles": compiles,
            "compile_s": counter.seconds if backend == "jax" else None,
            "shapes": completer.compile_count if completer else None,
        }
        print(f"[{backend}] {method}: {total:.1f} s, {compiles} compiles", file=sys.stderr,
              flush=True)

    for method in args.methods:
        run(method)
    emit(result)


def _same(middle: str, reference: str, method: str) -> bool:
    """Correct = the reference completion. (a) has no per-call budget (it runs to 128 tokens),
    so its output counts as correct when it starts with a non-empty reference."""
    if method == "a_seed_128" and reference:
        return middle.startswith(reference)
    return middle == reference


def summarise(results: list[dict]) -> tuple[list[dict], str]:
    rows = []
    for res in results:
        methods = res["methods"]
        ref = methods.get("b_exact_length", {}).get("middles")
        lost = sum(1 for n in res["prompt_tokens"] if n > SEED_MAX_LENGTH)
        # Requests that fit the seed's 128 tokens (prompt + budget): (a)'s own domain.
        fits = [i for i, (n, k) in enumerate(zip(res["prompt_tokens"], res["budgets"]))
                if n + k <= SEED_MAX_LENGTH]
        for m, r in methods.items():
            correct = (sum(_same(x, y, m) for x, y in zip(r["middles"], ref)) if ref else None)
            row = {"backend": res["backend"], "method": LABELS[m], "total_s": r["total_s"],
                   "compiles": r["compiles"], "correct": f"{correct}/{res['n']}",
                   "lost_suffix": lost if m == "a_seed_128" else 0,
                   f"s_on_{len(fits)}_short": sum(r["times"][i] for i in fits),
                   "s_excl_first": sum(r["times"][1:])}
            if "b_exact_length" in methods:
                row["b/this"] = methods["b_exact_length"]["total_s"] / r["total_s"]
            if "a_seed_128" in methods:
                row["this/a"] = r["total_s"] / methods["a_seed_128"]["total_s"]
            rows.append(row)
    return rows, table(rows)


def plot(results: list[dict], out_dir: Path, m: dict, note: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results):
        for meth, r in res["methods"].items():
            ax.plot(np.arange(1, len(r["times"]) + 1), np.cumsum(r["times"]), marker=".",
                    label=f"{LABELS[meth]} ({r['compiles']} compiles)")
        ax.set_title(f"{res['backend']}: cumulative time over {res['n']} completions")
        ax.set_xlabel("completion # (prompt lengths mixed, 4..~2000 tokens)")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return save_plot(fig, "compile_once", out_dir, m, note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    p.add_argument("--model", default="auto",
                   help="auto (practice model if installed, else small random), practice, "
                        "small, medium, tiny, or a preset directory")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--max-prompt", type=int, default=1900)
    p.add_argument("--context", type=int, default=4096,
                   help="Completer context length (prompt + completion)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--tiny", action="store_true", help="smoke test: tiny model, 3 requests, jax")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.n, args.max_prompt, args.backends = 3, 150, args.backends[:1]
        if args.model == "auto":
            args.model = "tiny"
        args.methods = ["a_seed_128", "b_exact_length", "c_completer", "c3_bounded"]
    if args.child:
        child(args.child, args)
        return 0
    m = machine()
    args.model = str(resolve_model(args.model))     # one snapshot for every child process
    child_args = ["--model", args.model, "--n", str(args.n), "--max-prompt", str(args.max_prompt),
                  "--context", str(args.context), "--seed", str(args.seed),
                  "--methods", *args.methods]
    results = [run_child(Path(__file__), b, child_args, nice=args.nice) for b in args.backends]
    rows, md_table = summarise(results)
    note = (f"model: {results[0]['preset']}; {versions()}; run under nice -n {args.nice}, "
            "machine shared with a training job")
    md = "\n".join([
        "# Compile-once benchmark", "", f"Machine: {machine_line(m)}", "", note, "",
        f"{args.n} completions, prompt tokens {sorted(results[0]['prompt_tokens'])}, "
        f"budgets {results[0]['budgets']} (in run order).", "",
        md_table, "",
        "`correct`: equal to the full-context greedy completion ((b) by construction; for (a), "
        "which has no per-call budget, starting with it). "
        "`lost_suffix`: prompts over 128 tokens, whose suffix and <|fim_middle|> the packer cut "
        "off in (a). `b/this`: speed-up over (b); `this/a`: time relative to (a). "
        "`s_on_N_short`: time on the N requests whose prompt + budget fit in 128 tokens, "
        "where (a) is valid. `s_excl_first`: total without the first call (its compile).",
    ])
    print(md)
    if not args.tiny or args.out != RESULTS_DIR:
        write_results(args.out, "compile_once", md, rows, {"machine": m, "results": results})
        print("plot:", plot(results, args.out, m, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
