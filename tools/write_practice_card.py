"""Write MODEL_CARD.md for the practice model from its eval.json, cg_model_info.json and loss log.

The numbers come from the files; what only the person who ran the training knows comes from
text files: ``--phases`` (a markdown list of the training phases), ``--hardware`` (one
sentence) and ``--outlook`` (what more compute would buy).

Example:
    python tools/write_practice_card.py cg_helpers/presets/practice_codegemma /tmp/practice_run \
        --phases phases.md --hardware "2 idle CPU cores" --outlook outlook.md
"""

from __future__ import annotations

import json
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def write_card(preset: str | Path, log_dir: str | Path, notes: str = "", *,
               hardware: str = "a 2-core CPU", outlook: str = "") -> Path:
    preset, log_dir = Path(preset), Path(log_dir)
    info = json.loads((preset / "cg_model_info.json").read_text())
    config = json.loads((preset / "config.json").read_text())["config"]
    ev = json.loads((preset / "eval.json").read_text())["result"]
    rows = [json.loads(x) for x in (log_dir / "loss.jsonl").read_text().splitlines() if x.strip()]
    he_path = preset / "humaneval.json"
    he = json.loads(he_path.read_text()) if he_path.is_file() else None
    size = sum(p.stat().st_size for p in preset.rglob("*") if p.is_file())
    last = rows[-1]
    tail = [r["loss"] for r in rows[-20:]]
    seeds = ev["seeds"]
    imp = seeds["import"]
    lines = [
        "# Offline practice model (not CodeGemma)",
        "",
        f"**{info['name']}**: a {info['params'] / 1e6:.2f}M-parameter model with CodeGemma's "
        "architecture class (`keras_hub.models.GemmaCausalLM`) and CodeGemma's special tokens "
        "and ids, trained for about "
        f"{last['minutes']:.0f} minutes on {hardware}. It exists so that notebooks, the "
        "CLI and the widget show real fill-in-the-middle behaviour offline, with no Kaggle "
        "account and no GPU. **It is not CodeGemma, it is not a distillation of it, and it is "
        "not for real use**: its completions are often wrong and it knows only the Python "
        "standard library's style. Every result that uses it carries the label "
        f"\"{info['label']}\".",
        "",
        "## Architecture",
        f"- `GemmaBackbone`: {config['num_layers']} layers, hidden {config['hidden_dim']}, "
        f"{config['num_query_heads']} query heads, {config['num_key_value_heads']} key/value head "
        f"(multi-query, like CodeGemma 2B), head dim {config['head_dim']}, MLP "
        f"{config['intermediate_dim']}, vocabulary {config['vocabulary_size']} (tied embeddings).",
        f"- Parameters: {info['params']:,}. Weights stored as {info.get('weights_dtype', 'float32')}; "
        f"preset size on disk {size / 1e6:.1f} MB.",
        f"- Context: trained at {info['context_length']} tokens (prompt + completion); "
        "`cg_model_info.json` records it, so the completion engine budgets prompts to it.",
        "- Tokenizer: SentencePiece BPE trained on the training files, whitespace-exact "
        "(identity normalisation, no whitespace collapsing, no dummy prefix, byte fallback, "
        "split digits). Special ids as in CodeGemma: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, "
        "`<|fim_prefix|>` 67, `<|fim_middle|>` 68, `<|fim_suffix|>` 69, `<|file_separator|>` 70, "
        "`<start_of_turn>` 106, `<end_of_turn>` 107. About 3.3 characters per token on code.",
        "",
        "## Data",
        "The CPython standard library shipped with the training interpreter (PSF license, test "
        "suites excluded) plus simple generated Python; whole files held out for evaluation. "
        "FIM samples in CodeGemma's PSM order, some SPM and plain left-to-right samples. "
        "The tutorial's two seed examples and near copies are filtered out. Details, file lists "
        "and the filter: [DATA.md](DATA.md).",
        "",
        "## Training",
        f"- `tools/train_practice_model.py` (JAX, jitted step over keras `stateless_call`, AdamW, "
        f"gradient clipping 1.0, warmup then cosine decay over a wall-clock budget), seed 1234.",
        f"- Hardware: {hardware}. In all {last['step']:,} logged steps, "
        f"{last['tokens'] / 1e6:.1f}M tokens (padding excluded), {last['minutes']:.0f} minutes "
        "wall clock.",
        "- The run went in phases (all from `tools/train_practice_model.py`, the later ones with "
        "`--init-preset`, which keeps the weights and tokenizer and restarts the optimizer "
        "state and the learning-rate schedule):",
        notes,
        f"- Loss log: [loss.jsonl](loss.jsonl) (weighted cross-entropy, nats/token); plot: "
        "[loss.png](loss.png). Mean of the last 20 records: "
        f"{sum(tail) / len(tail):.2f}. The loss values before and after the weighting change "
        "are not on the same scale.",
        "",
        "## Evaluation (held-out files only; greedy; `tools/eval_practice_model.py`)",
        f"- **Single-line exact match**: {pct(ev['exact_match'])} of {ev['cases']} held-out "
        f"lines (5-60 characters after the indentation; cursor after the indentation, suffix "
        f"from the newline on; {ev['heldout_files']} held-out files, {ev['pool']} such lines, a "
        f"seeded sample of {ev['cases']}). Target: 15 %.",
        f"- **Stops properly**: {pct(ev['stops_properly'])} (a stop token within "
        f"{ev['max_new_tokens']} new tokens, after a non-empty middle with no newline). "
        "Target: 90 %.",
        f"- **Seed example 1** (`import ` + `\\nif __name__ == \"__main__\":\\n    sys.exit(0)`): "
        f"`import ` seed -> `{imp['got']}`" + (" (stopped)" if imp["stopped"] else " (did not stop)")
        + (" - correct." if imp["ok"] else " - wrong (expected `sys`). "
           "`tests/test_practice_model.py` asserts this documented text."),
        f"- **Seed example 2** (`calculate_age` body): `{seeds['calculate_age']['got']!s}`"
        + (" (stopped)" if seeds['calculate_age']["stopped"] else " (did not stop)")
        + (" - correct." if seeds['calculate_age']["ok"] else
           " - not the expected `age = current_year - birth_year`."),
    ]
    if he:
        lines.append(
            f"- **HumanEval single-line infilling** pass@1: {pct(he['pass_at_1'])} on a seeded "
            f"sample of {he['n']} of the 1033 tasks (prompts trimmed to the "
            f"{info['context_length']}-token context; CodeGemma 2B reports 78.4 %).")
    lines += [
        "",
        "## What the model is not",
        f"- Not CodeGemma: about {2.5e9 / info['params']:,.0f} times smaller than CodeGemma 2B, "
        f"trained for {last['minutes'] / 60:.1f} hours on a CPU on "
        f"{last['tokens'] / 1e6:.0f}M tokens of one codebase. Do not judge CodeGemma by it.",
        "- Not for real use: no safety work, no instruction tuning (the turn markers exist but "
        "were never trained), no knowledge beyond the standard library's style.",
        "- The random test model (`cg_helpers.tiny_model.make_test_preset`) stays for unit "
        "tests where quality does not matter.",
        "",
        "## What more compute would buy",
        outlook,
        "",
        "## Reproduce",
        "Each phase above is one `tools/train_practice_model.py` run; the exact arguments of "
        "each are in [training_args.json](training_args.json). Then:",
        "```",
        "KERAS_BACKEND=jax python tools/eval_practice_model.py -n 300 --humaneval 200 \\",
        "    --json cg_helpers/presets/practice_codegemma/eval.json",
        "python tools/plot_practice_loss.py <log dir>/loss.jsonl cg_helpers/presets/practice_codegemma/loss.png \\",
        "    --evals <log dir>/checkpoint_evals.jsonl   # from tools/watch_practice_checkpoints.py",
        "python tools/write_practice_card.py cg_helpers/presets/practice_codegemma <log dir> \\",
        "    --phases docs/practice_model_experiments/phases.md --hardware '...' \\",
        "    --outlook docs/practice_model_experiments/outlook.md",
        "```",
        "",
    ]
    path = preset / "MODEL_CARD.md"
    path.write_text("\n".join(x for x in lines if x is not None), encoding="utf-8")
    return path


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset")
    ap.add_argument("log_dir")
    ap.add_argument("--phases", help="markdown list of the training phases")
    ap.add_argument("--hardware", default="a 2-core CPU")
    ap.add_argument("--outlook", help="markdown: what more compute would buy")
    args = ap.parse_args(argv)
    read = lambda f: Path(f).read_text(encoding="utf-8").strip() if f else ""  # noqa: E731
    print(write_card(args.preset, args.log_dir, read(args.phases), hardware=args.hardware,
                     outlook=read(args.outlook)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
