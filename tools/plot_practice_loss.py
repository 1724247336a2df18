"""Plot the practice model's loss curve (loss.jsonl written by train_practice_model.py).

Example:
    python tools/plot_practice_loss.py /tmp/practice_run/loss.jsonl \\
        cg_helpers/presets/practice_codegemma/loss.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plot(log: str | Path, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{log} holds no loss records yet; wait for the first 10 steps.")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    tokens = [r["tokens"] / 1e6 for r in rows]
    ax.plot(tokens, [r["loss"] for r in rows], lw=0.6, alpha=0.4, label="loss (per step)")
    losses = [r["loss"] for r in rows]
    k = 5
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1])
              for i in range(len(losses))]
    ax.plot(tokens, smooth, lw=1.8, label=f"loss (mean of last {k} records)")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("weighted cross-entropy (nats/token)")
    ax.set_title(f"practice model: {rows[-1]['step']} steps, {rows[-1]['minutes']:.0f} min, 2-core CPU")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


if __name__ == "__main__":
    plot(sys.argv[1], sys.argv[2])
