"""Evaluate each checkpoint of a running practice-model training, for the card's progress plot.

Runs beside ``tools/train_practice_model.py``: whenever the training log reports a new
checkpoint, it copies ``<log>/checkpoint`` (so the next save cannot swap it mid-read), runs
``tools/eval_practice_model.py`` on the copy and appends one JSON line to
``<log>/checkpoint_evals.jsonl``: tokens and steps trained, held-out exact match, stop rate and
the two seed completions. Ends when the training process does. Each evaluation takes about
20 s of CPU, a few per cent of a 10-minute checkpoint interval.

Example:
    python tools/watch_practice_checkpoints.py /tmp/practice_run /tmp/practice_run/train.out
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def training_running() -> bool:
    out = subprocess.run(["pgrep", "-f", "train_practice_model.py"], capture_output=True)
    return out.returncode == 0


def evaluate_checkpoint(log_dir: Path, n: int = 300) -> dict:
    """Evaluate a copy of ``log_dir/checkpoint``; return the summary line."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "checkpoint"
        shutil.copytree(log_dir / "checkpoint", copy)
        out = Path(tmp) / "eval.json"
        subprocess.run([sys.executable, str(ROOT / "tools/eval_practice_model.py"),
                        "--preset", str(copy), "-n", str(n), "--show", "0", "--json", str(out)],
                       check=True, capture_output=True, env={**os.environ, "KERAS_BACKEND": "jax"})
        result = json.loads(out.read_text())["result"]
        info = json.loads((copy / "cg_model_info.json").read_text())
    return {"trained_steps": info["trained_steps"], "trained_tokens": info["trained_tokens"],
            "saved_as": info.get("saved_as"), "exact_match": result["exact_match"],
            "stops_properly": result["stops_properly"],
            "seeds": {k: v["got"] for k, v in result["seeds"].items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log_dir", type=Path)
    ap.add_argument("train_out", type=Path, help="the training's stdout (says 'saved step N')")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--poll", type=float, default=60.0, help="seconds between looks")
    args = ap.parse_args(argv)

    def saves() -> int:
        text = args.train_out.read_text() if args.train_out.is_file() else ""
        return sum(line.startswith("saved step") for line in text.splitlines())

    seen = saves()
    while training_running():
        if saves() != seen:
            seen = saves()
            try:
                row = evaluate_checkpoint(args.log_dir, args.n)
            except (OSError, subprocess.CalledProcessError) as err:   # e.g. a save in progress
                print(f"checkpoint evaluation failed: {err}", flush=True)
                continue
            with open(args.log_dir / "checkpoint_evals.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(row, flush=True)
        time.sleep(args.poll)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
