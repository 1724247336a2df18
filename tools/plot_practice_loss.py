"""Plot the practice model's training: loss curve, and held-out metrics of its checkpoints.

``loss.jsonl`` is written by ``train_practice_model.py``. Vertical lines mark where the loss
weighting or batch changed (the loss before and after is not on the same scale). With
``--evals`` (JSON lines with ``trained_tokens``, ``exact_match``, ``stops_properly``, one per
evaluated checkpoint), a second panel shows how the held-out numbers moved with training.

Example:
    python tools/plot_practice_loss.py /tmp/practice_run/loss.jsonl \\
        cg_helpers/presets/practice_codegemma/loss.png --evals checkpoint_evals.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot(log: str | Path, out: str | Path, evals: str | Path | None = None,
         hardware: str = "2-core CPU") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_jsonl(log)
    if not rows:
        raise ValueError(f"{log} holds no loss records yet; wait for the first 10 steps.")
    points = _read_jsonl(evals) if evals else []
    fig, axes = plt.subplots(2 if points else 1, 1, figsize=(7, 6.5 if points else 4), dpi=100,
                             sharex=True, squeeze=False)
    ax = axes[0][0]
    tokens = [r["tokens"] / 1e6 for r in rows]
    losses = [r["loss"] for r in rows]
    ax.plot(tokens, losses, lw=0.6, alpha=0.4, label="loss (per step)")
    k = 5
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1])
              for i in range(len(losses))]
    ax.plot(tokens, smooth, lw=1.8, label=f"loss (mean of last {k} records)")
    for prev, cur in zip(rows, rows[1:]):
        keys = ("batch", "context_weight", "lm_frac")
        if any(prev.get(key) != cur.get(key) for key in keys):
            ax.axvline(cur["tokens"] / 1e6, color="grey", ls=":", lw=1)
            ax.text(cur["tokens"] / 1e6, max(losses), f" weight {cur['context_weight']}",
                    fontsize=7, va="top", color="grey")
    ax.set_ylabel("weighted cross-entropy\n(nats/token)")
    ax.set_title(f"practice model: {rows[-1]['step']} steps, {rows[-1]['minutes']:.0f} min, "
                 f"{hardware}")
    ax.grid(alpha=0.3)
    ax.legend()
    if points:
        ax2 = axes[1][0]
        xs = [p["trained_tokens"] / 1e6 for p in points]
        ax2.plot(xs, [100 * p["exact_match"] for p in points], "o-",
                 label="held-out single-line exact match")
        ax2.plot(xs, [100 * p["stops_properly"] for p in points], "s-", label="stops properly")
        ax2.axhline(15, color="C0", ls="--", lw=0.8, label="exact-match target 15 %")
        ax2.axhline(90, color="C1", ls="--", lw=0.8, label="stop target 90 %")
        ax2.set_ylabel("% of 300 held-out lines")
        ax2.set_ylim(0, 100)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8, loc="center right")
    axes[-1][0].set_xlabel("training tokens (millions)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", help="loss.jsonl")
    ap.add_argument("out", help="the .png to write")
    ap.add_argument("--evals", help="checkpoint evaluations (JSON lines)")
    ap.add_argument("--hardware", default="2-core CPU")
    args = ap.parse_args(argv)
    plot(args.log, args.out, args.evals, args.hardware)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
