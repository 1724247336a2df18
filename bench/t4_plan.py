"""The T4 plan: expected CodeGemma decode speed on paper, and a runner that fills in the real one.

Paper (no GPU needed): batch-1 decoding reads every weight once per token, so on a T4
(320 GB/s) a token costs at least ``weight bytes / 320 GB/s``; prefill is compute-bound
(``2 × params × padded tokens`` FLOPs at the T4's 65 TFLOP/s float16 peak). The table compares
that with the CodeGemma report's 0.53 s per single-line HumanEval-infilling task (2B, HF
transformers, bf16, batch 1: 1033 tasks in 543 s).

Runner (on a GPU runtime, e.g. Colab T4, with Kaggle access to the weights)::

    python bench/t4_plan.py --run --preset code_gemma_2b_en --dtype float16 --backend jax
    python bench/t4_plan.py --run --preset code_gemma_2b_en --dtype float16 --backend torch
    python bench/t4_plan.py --run ... --batch-size 8      # complete_many throughput

Each run appends rows to ``--csv`` (default ``bench/results/t4_runs.csv``): UTC time, device,
backend, dtype, preset, task id, prompt/generated tokens, bucket, seconds, ms per token, whether
the call compiled, stop reason. ``python bench/t4_plan.py --summary`` prints the CSV as a table
next to the paper numbers.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, ROOT, median, table  # noqa: E402

T4_BANDWIDTH = 320e9           # bytes/s (NVIDIA T4 datasheet)
T4_FP16_FLOPS = 65e12          # peak, tensor cores
T4_USABLE_BYTES = 15e9
EFFICIENCY = (0.6, 0.8)        # share of peak bandwidth a good decode loop reaches
SINGLE_LINE_TOKENS = 16        # typical single-line completion incl. the stop token
CSV_FIELDS = ["utc", "device", "backend", "dtype", "preset", "batch_size", "task",
              "prompt_tokens", "new_tokens", "bucket", "seconds", "ms_per_token", "compiled",
              "stop_reason"]


def paper_rows() -> list[dict]:
    from cg_helpers.evaluation import REPORTED_TIMING
    from cg_helpers.loading import PRESETS

    reported = REPORTED_TIMING["seconds"] / REPORTED_TIMING["tasks"]
    rows = []
    for name in ("code_gemma_2b_en", "code_gemma_7b_en"):
        info = PRESETS[name]
        for dtype in ("float16", "int8", "int4"):
            wb = info.weight_bytes(dtype)
            bound_ms = 1000 * wb / T4_BANDWIDTH
            real_ms = (bound_ms / EFFICIENCY[1], bound_ms / EFFICIENCY[0])
            prefill_512 = 2 * info.params * 512 / (T4_FP16_FLOPS * 0.5)
            task = (prefill_512 + SINGLE_LINE_TOKENS * real_ms[0] / 1000,
                    prefill_512 + SINGLE_LINE_TOKENS * real_ms[1] / 1000)
            rows.append({
                "preset": name, "dtype": dtype, "weights_GB": wb / 1e9,
                "fits_T4": "yes" if wb * 1.15 < T4_USABLE_BYTES else "no",
                "bound_ms/token": bound_ms, "expected_ms/token": f"{real_ms[0]:.0f}-{real_ms[1]:.0f}",
                "max_tokens/s": 1000 / bound_ms,
                "prefill_512_s": prefill_512,
                "single_line_s": f"{task[0]:.2f}-{task[1]:.2f}",
                "report_s": f"{reported:.2f}" if name == "code_gemma_2b_en" and dtype == "float16" else "",
            })
    return rows


def paper_md() -> str:
    return "\n".join([
        "| assumption | value |", "|---|---|",
        f"| T4 memory bandwidth | {T4_BANDWIDTH / 1e9:.0f} GB/s |",
        f"| T4 float16 peak | {T4_FP16_FLOPS / 1e12:.0f} TFLOP/s (prefill assumed at 50 %) |",
        f"| decode efficiency | {EFFICIENCY[0]:.0%}-{EFFICIENCY[1]:.0%} of bandwidth |",
        f"| single-line task | prefill of a 512 bucket + {SINGLE_LINE_TOKENS} decode steps |",
        "", table(paper_rows()),
        "", "int8/int4: weights are read at 1 / 0.5 bytes, but Keras dequantizes on the fly, so "
            "the int rows are optimistic; 7B float16 (17 GB) does not fit a T4."])


def _device() -> str:
    from cg_helpers.runtime import detect_devices

    devices = detect_devices(probe_frameworks=True)
    return str(devices[0]) if devices else "cpu"


def run(args: argparse.Namespace) -> list[dict]:
    os.environ.setdefault("KERAS_BACKEND", args.backend)
    from cg_helpers.completion import Completer, FIMRequest
    from cg_helpers.loading import load_model

    loaded = load_model(args.preset, dtype=args.dtype)
    completer = Completer.from_loaded(loaded)
    tasks = _tasks(args.n)
    device = _device()
    rows = []
    utc = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    seen_buckets: set[int] = set()
    for start in range(0, len(tasks), args.batch_size):
        chunk = tasks[start:start + args.batch_size]
        before_count = completer.compile_count
        t0 = time.perf_counter()
        results = completer.complete_many([FIMRequest(b, a) for _, b, a in chunk],
                                          max_new_tokens=args.max_new_tokens,
                                          batch_size=args.batch_size, progress=False)
        wall = time.perf_counter() - t0
        compiled = completer.compile_count > before_count or results[0].bucket not in seen_buckets
        seen_buckets.add(results[0].bucket)
        for (task_id, _, _), r in zip(chunk, results):
            rows.append({
                "utc": utc, "device": device, "backend": os.environ["KERAS_BACKEND"],
                "dtype": args.dtype or "default", "preset": loaded.name,
                "batch_size": args.batch_size, "task": task_id,
                "prompt_tokens": r.prompt_tokens, "new_tokens": r.generated_tokens,
                "bucket": r.bucket, "seconds": round(wall / len(chunk), 4),
                "ms_per_token": round(1000 * wall / len(chunk) / max(1, r.generated_tokens), 2),
                "compiled": compiled, "stop_reason": r.stop_reason})
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new_file:
            w.writeheader()
        w.writerows(rows)
    return rows


def _tasks(n: int) -> list[tuple[str, str, str]]:
    """``(task id, before, after)``: a seeded sample of HumanEval single-line infilling."""
    try:
        from cg_helpers.evaluation import build_tasks, select_tasks

        picked = select_tasks(build_tasks("single-line"), sample=n, seed=0)
        return [(t.task_id, t.prefix, t.suffix) for t in picked]
    except ImportError:
        snippets = [("def add(a, b):\n    ", "\n"), ("import ", "\nsys.exit(0)\n"),
                    ("for i in range(10):\n    ", "\nprint('done')\n")]
        return [(f"builtin/{i}", *snippets[i % len(snippets)]) for i in range(n)]


def summarise(csv_path: Path) -> str:
    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["device"], r["backend"], r["dtype"], r["preset"], r["batch_size"]),
                          []).append(r)
    out = []
    for (device, backend, dtype, preset, bs), rs in groups.items():
        warm = [r for r in rs if r["compiled"] != "True"] or rs
        out.append({"device": device, "backend": backend, "dtype": dtype, "preset": preset,
                    "batch": bs, "tasks": len(rs),
                    "s/task (warm, median)": median(float(r["seconds"]) for r in warm),
                    "ms/token (warm, median)": median(float(r["ms_per_token"]) for r in warm),
                    "first call s": max(float(r["seconds"]) for r in rs)})
    return table(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="store_true", help="load the model and time real completions")
    p.add_argument("--summary", action="store_true", help="print the CSV as a table")
    p.add_argument("--preset", default="code_gemma_2b_en")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--backend", default="jax")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--csv", default=str(RESULTS_DIR / "t4_runs.csv"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    print("# CodeGemma on a T4: paper plan\n")
    print(paper_md())
    if args.run:
        rows = run(args)
        print(f"\nAppended {len(rows)} rows to {args.csv}")
    if args.run or args.summary:
        if Path(args.csv).exists():
            print("\n## Measured\n")
            print(summarise(Path(args.csv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
