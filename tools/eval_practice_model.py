"""Evaluate the practice model on held-out stdlib files (whole files never trained on).

Metrics (greedy decoding, stop ids ``(1, 67, 68, 69, 70)``):

* **exact match**: single-line middles. For a held-out line whose text after the indentation is
  5-60 characters, the prompt is ``<bos><|fim_prefix|>{text up to the cursor after the
  indentation}<|fim_suffix|>{"\\n" + the rest of the file}<|fim_middle|>``, trimmed to the
  model's context (text nearest the cursor kept). Exact match = the generated middle, up to the
  first stop token, equals the line text exactly.
* **stops properly**: a stop token is emitted within ``--max-new-tokens`` and the middle holds no
  newline (it ends at the end of the line, where the suffix begins).
* the two seed examples from the CodeGemma tutorial.
* with ``--humaneval N``: HumanEval single-line infilling pass@1 on a seeded sample of ``N``
  tasks, through the same ``Completer`` the CLI uses (``cg_helpers.evaluation``); the summary
  goes to ``humaneval.json`` next to ``--json``.

Example:
    KERAS_BACKEND=jax python tools/eval_practice_model.py --preset cg_helpers/presets/practice_codegemma
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

SEEDS = [
    ("import", "import ", '\nif __name__ == "__main__":\n    sys.exit(0)', "sys"),
    ("calculate_age",
     'def calculate_age(birth_year):\n    """Calculates a person\'s age based on their birth year."""\n'
     "    current_year = 2024\n    ",
     "\n    return age\n", "age = current_year - birth_year"),
]


def heldout_cases(n: int, seed: int = 0, min_len: int = 5, max_len: int = 60):
    """``n`` (prefix, middle, suffix, path) single-line cases from held-out files."""
    from practice_corpus import _line_spans, load_stdlib, single_line_split

    corpus = load_stdlib()
    cases = []
    for rel, text in corpus.heldout:
        for span in _line_spans(text):
            p, m, s = single_line_split(text, span)
            if min_len <= len(m) <= max_len and "\n" not in m:
                cases.append((p, m, s, rel))
    rng = random.Random(seed)
    rng.shuffle(cases)
    return cases[:n], len(cases), [r for r, _ in corpus.heldout]


def generate_middles(lm, proto: bytes, cases, *, context: int, max_new: int, batch: int = 16):
    """Greedy middles for (prefix, suffix) pairs; returns [(middle, stopped)]."""
    import numpy as np

    from practice_corpus import STOP_IDS, SampleMaker

    maker = SampleMaker(proto, context)
    pre = lm.preprocessor
    lm.preprocessor = None
    out = []
    try:
        for i in range(0, len(cases), batch):
            chunk = cases[i:i + batch]
            prompts = [maker.fim_prompt_ids(p, s, context - max_new) for p, s in chunk]
            width = context
            ids = np.zeros((batch, width), np.int32)
            mask = np.zeros((batch, width), bool)
            for j, pr in enumerate(prompts):
                ids[j, :len(pr)] = pr
                mask[j, :len(pr)] = True
            for j in range(len(prompts), batch):       # keep the batch shape fixed
                ids[j, :len(prompts[0])] = prompts[0]
                mask[j, :len(prompts[0])] = True
            res = lm.generate({"token_ids": ids, "padding_mask": mask},
                              stop_token_ids=STOP_IDS)
            toks = np.asarray(res["token_ids"])
            for j, pr in enumerate(prompts):
                gen = [int(t) for t in toks[j, len(pr):len(pr) + max_new]]
                stop = next((k for k, t in enumerate(gen) if t in STOP_IDS), None)
                body = gen if stop is None else gen[:stop]
                body = [t for t in body if t != 0]
                out.append((maker.sp.decode(body), stop is not None))
    finally:
        lm.preprocessor = pre
    return out


def evaluate(preset: str, n: int = 300, max_new: int = 32, seed: int = 0, show: int = 0):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras_hub

    from cg_helpers.tiny_model import read_model_info

    t0 = time.time()
    lm = keras_hub.models.GemmaCausalLM.from_preset(preset)
    info = read_model_info(preset)
    context = int(info.get("context_length", 256))
    proto = lm.preprocessor.tokenizer.proto
    if not isinstance(proto, bytes):
        proto = bytes(proto)
    cases, pool, files = heldout_cases(n, seed)
    got = generate_middles(lm, proto, [(p, s) for p, _, s, _ in cases], context=context,
                           max_new=max_new)
    exact = sum(g == m for (g, _), (_, m, _, _) in zip(got, cases))
    stops = sum(bool(st and g.strip() and "\n" not in g) for g, st in got)
    seeds = generate_middles(lm, proto, [(p, s) for _, p, s, _ in SEEDS], context=context,
                             max_new=max_new)
    result = {
        "preset": preset, "model": info.get("name"), "cases": len(cases), "pool": pool,
        "heldout_files": len(files), "context_length": context, "max_new_tokens": max_new,
        "exact_match": round(exact / len(cases), 4),
        "stops_properly": round(stops / len(cases), 4),
        "seeds": {name: {"expected": exp, "got": g, "stopped": st, "ok": g == exp}
                  for (name, _, _, exp), (g, st) in zip(SEEDS, seeds)},
        "seconds": round(time.time() - t0, 1),
    }
    examples = [{"line": m, "got": g, "stopped": st, "file": rel}
                for (g, st), (_, m, _, rel) in list(zip(got, cases))[:show]]
    return result, examples


def humaneval(preset: str, n: int, out: str | Path, seed: int = 0, max_new: int = 32) -> dict:
    """HumanEval single-line infilling pass@1 on a seeded sample of ``n`` tasks; writes ``out``."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from cg_helpers.completion import Completer
    from cg_helpers.evaluation import run_evaluation
    from cg_helpers.loading import load_model

    import tempfile

    completer = Completer.from_loaded(load_model(preset))
    with tempfile.TemporaryDirectory() as tmp:   # a fresh run: never resume older rows
        report = run_evaluation(completer, "single-line", sample=n, seed=seed,
                                max_new_tokens=max_new, batch_size=8, workers=1,
                                results_path=Path(tmp) / "rows.jsonl", progress=False)
    print(report.table())
    summary = report.summary()
    Path(out).write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the offline practice model.")
    ap.add_argument("--preset", default=str(ROOT / "cg_helpers/presets/practice_codegemma"))
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10)
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--humaneval", type=int, default=0, metavar="N",
                    help="also run HumanEval single-line infilling on a seeded sample of N "
                    "tasks (writes humaneval.json beside --json, or in the preset)")
    args = ap.parse_args(argv)
    result, examples = evaluate(args.preset, args.n, args.max_new_tokens, args.seed, args.show)
    for e in examples:
        print(f"{'OK ' if e['line'] == e['got'] else '   '} {e['line']!r:64} -> {e['got']!r}")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"result": result, "examples": examples}, indent=1))
    if args.humaneval:
        folder = Path(args.json).parent if args.json else Path(args.preset)
        humaneval(args.preset, args.humaneval, folder / "humaneval.json", args.seed,
                  args.max_new_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
