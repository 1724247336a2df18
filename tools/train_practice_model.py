"""Train the offline practice model: a small CodeGemma-architecture GemmaCausalLM, on CPU.

Data: the CPython standard library shipped with this interpreter (PSF license, test suites
excluded) plus simple generated Python, as FIM samples in CodeGemma's PSM order
``<bos><|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>M<|file_separator|>`` (some SPM and plain
left-to-right samples). Whole files are held out for evaluation. See ``tools/practice_corpus.py``.

Training: a jitted JAX step over keras ``stateless_call`` with a hand-written AdamW, warmup +
cosine decay over a wall-clock budget (``--minutes``). The preset is saved every
``--checkpoint-minutes`` so a usable model exists if the run is stopped early.

Example:
    KERAS_BACKEND=jax python tools/train_practice_model.py --minutes 80 \\
        --out cg_helpers/presets/practice_codegemma --log /tmp/practice_train
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "cg_helpers/presets/practice_codegemma"))
    ap.add_argument("--log", default="/tmp/practice_train", help="dir for loss log + checkpoints")
    ap.add_argument("--minutes", type=float, default=80.0, help="wall-clock training budget")
    ap.add_argument("--checkpoint-minutes", type=float, default=10.0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--context-weight", type=float, default=0.25)
    ap.add_argument("--generated-frac", type=float, default=0.08)
    ap.add_argument("--lm-frac", type=float, default=0.12)
    ap.add_argument("--spm-frac", type=float, default=0.05)
    ap.add_argument("--short-frac", type=float, default=0.75,
                    help="share of FIM rows cut to a random shorter length (so that the model "
                    "does not learn to stop at a fixed position); the rest fill the row")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--init-preset", help="continue from this preset's weights and tokenizer "
                    "(fresh optimizer state); appends to --log/loss.jsonl")
    ap.add_argument("--pilot", action="store_true", help="time steps only, save nothing")
    ap.add_argument("--dtype", default="auto", help="saved weight dtype: auto|float32|bfloat16")
    return ap.parse_args(argv)


def batches(corpus_train, maker, args, rng: random.Random):
    """Endless generator of (inputs, targets, weights) numpy batches."""
    import numpy as np

    from practice_corpus import choose_split, generated_snippet, is_excluded

    texts = [t for _, t in corpus_train]
    sizes = [len(t) for t in texts]
    window = int(args.seq_len * 4.5)
    while True:
        rows, wts = [], []
        while len(rows) < args.batch:
            if rng.random() < args.generated_frac:
                text = generated_snippet(rng)
                if is_excluded(text):
                    continue
            else:
                text = rng.choices(texts, weights=sizes)[0]
                if len(text) > window:
                    start = 0 if rng.random() < 0.1 else rng.randrange(len(text) - window // 2)
                    if start:
                        nl = text.find("\n", start)
                        start = nl + 1 if nl >= 0 else start
                    text = text[start:start + window]
                    if rng.random() < 0.8:          # end at a line boundary
                        cut = text.rfind("\n")
                        text = text[:cut + 1] if cut > 0 else text
                if is_excluded(text):
                    continue
            r = rng.random()
            if r < args.lm_frac:
                ids, w = maker.lm_row(text)
            else:
                p, m, s = choose_split(text, rng)
                ids, w = maker.fim_row(p, m, s, rng, spm_order=r < args.lm_frac + args.spm_frac)
            row, wt = maker.pack(ids, w)
            rows.append(row)
            wts.append(wt)
        arr = np.stack(rows)
        yield arr[:, :-1], arr[:, 1:], np.stack(wts)


def prefetch(gen, size=6):
    q: queue.Queue = queue.Queue(size)

    def work():
        for item in gen:
            q.put(item)

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    random.seed(args.seed)
    import numpy as np

    np.random.seed(args.seed)
    from practice_corpus import SampleMaker, load_stdlib, write_data_md

    from cg_helpers.tiny_model import build_gemma_causal_lm, train_tokenizer, write_model_info

    t_start = time.time()
    log_dir = Path(args.log)
    log_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_stdlib()
    print(f"corpus: {len(corpus.train)} train files, {len(corpus.heldout)} held out, "
          f"{len(corpus.excluded)} excluded: {corpus.excluded}", flush=True)
    (log_dir / "corpus.json").write_text(json.dumps({
        "python_version": corpus.python_version, "stdlib": corpus.stdlib,
        "train": [r for r, _ in corpus.train], "heldout": [r for r, _ in corpus.heldout],
        "excluded": corpus.excluded}, indent=1))

    if args.init_preset:
        import keras_hub

        init_lm = keras_hub.models.GemmaCausalLM.from_preset(args.init_preset)
        proto = init_lm.preprocessor.tokenizer.proto
        proto = proto if isinstance(proto, bytes) else bytes(proto)
    else:
        proto = train_tokenizer([t for _, t in corpus.train], vocab_size=args.vocab,
                                input_sentence_size=400_000, seed=args.seed)
        print(f"tokenizer trained in {time.time() - t_start:.0f}s", flush=True)

    import jax
    import jax.numpy as jnp
    import keras

    lm = build_gemma_causal_lm(
        proto, num_layers=args.layers, hidden_dim=args.hidden, num_query_heads=args.heads,
        num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
        intermediate_dim=args.intermediate, sequence_length=args.seq_len, seed=args.seed)
    if args.init_preset:
        for dst, src in zip(lm.backbone.weights, init_lm.backbone.weights):
            dst.assign(src.value)
        del init_lm
    n_params = lm.backbone.count_params()
    print(f"model: {n_params:,} params", flush=True)
    maker = SampleMaker(proto, args.seq_len, args.context_weight, args.short_frac)
    data_seed = args.seed + (1 if args.init_preset else 0)  # new samples when continuing
    data = prefetch(batches(corpus.train, maker, args, random.Random(data_seed)))

    tv = [v.value for v in lm.trainable_variables]
    ntv = [v.value for v in lm.non_trainable_variables]
    decay_mask = [len(v.shape) >= 2 for v in lm.trainable_variables]
    m0 = [jnp.zeros_like(v) for v in tv]
    v0 = [jnp.zeros_like(v) for v in tv]

    def loss_fn(tv, ntv, x, y, w):
        logits, _ = lm.stateless_call(tv, ntv, {"token_ids": x, "padding_mask": x != 0},
                                      training=True)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        return (nll * w).sum() / jnp.maximum(w.sum(), 1.0)

    b1, b2, eps = 0.9, 0.98, 1e-8

    @jax.jit
    def step(tv, m, v, t, lr, x, y, w):
        loss, g = jax.value_and_grad(loss_fn)(tv, ntv, x, y, w)
        gn = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in g))
        scale = jnp.minimum(1.0, 1.0 / (gn + 1e-6))
        new_tv, new_m, new_v = [], [], []
        for p, gi, mi, vi, dec in zip(tv, g, m, v, decay_mask):
            gi = gi * scale
            mi = b1 * mi + (1 - b1) * gi
            vi = b2 * vi + (1 - b2) * gi * gi
            mh = mi / (1 - b1 ** t)
            vh = vi / (1 - b2 ** t)
            upd = mh / (jnp.sqrt(vh) + eps)
            if dec:
                upd = upd + args.weight_decay * p
            new_tv.append(p - lr * upd)
            new_m.append(mi)
            new_v.append(vi)
        return new_tv, new_m, new_v, loss, gn

    def save(tag: str, final: bool = False) -> None:
        """Save to a temp dir, then swap it in (readers never see a half-written preset)."""
        import shutil

        for var, val in zip(lm.trainable_variables, tv):
            var.assign(val)
        target = Path(args.out) if final else log_dir / "checkpoint"
        tmp = target.with_name(target.name + ".tmp")
        old = target.with_name(target.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        to_save = lm
        dtype = args.dtype
        if dtype == "auto":
            dtype = "float32" if n_params * 4 < 18e6 else "bfloat16"
        if dtype != "float32":
            to_save = build_gemma_causal_lm(
                proto, num_layers=args.layers, hidden_dim=args.hidden,
                num_query_heads=args.heads, num_key_value_heads=args.kv_heads,
                head_dim=args.head_dim, intermediate_dim=args.intermediate,
                sequence_length=args.seq_len, seed=args.seed, dtype=dtype)
            for dst, src in zip(to_save.backbone.weights, lm.backbone.weights):
                dst.assign(keras.ops.cast(src.value, dst.dtype))
        to_save.save_to_preset(str(tmp))
        size = f"{args.hidden}h{args.layers}l"
        write_model_info(tmp, {
            "name": f"practice-codegemma-{size}", "label": "offline practice model, not CodeGemma",
            "practice": True, "kind": "trained", "context_length": args.seq_len,
            "params": int(n_params), "trained_steps": int(step_i + offset["step"]), "saved_as": tag,
            "trained_tokens": int(tokens + offset["tokens"]),
            "weights_dtype": dtype})
        write_data_md(tmp, json.loads((log_dir / "corpus.json").read_text()), vars(args))
        if final and target.is_dir():      # keep the docs written next to the weights
            for extra in target.iterdir():
                if extra.is_file() and not (tmp / extra.name).exists():
                    shutil.copy2(extra, tmp / extra.name)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        print(f"saved {tag} -> {target}", flush=True)

    budget = args.minutes * 60 - (time.time() - t_start) - 60  # leave a minute to save
    train_start = time.time()
    step_i = 0
    total_steps = None
    offset = {"step": 0, "tokens": 0, "minutes": 0.0}
    prev_log = log_dir / "loss.jsonl"
    if args.init_preset and prev_log.is_file() and prev_log.read_text().strip():
        last = json.loads(prev_log.read_text().strip().splitlines()[-1])
        offset = {k: last[k] for k in offset}
        print(f"continuing the loss log after {offset}", flush=True)
    last_ckpt = time.time()
    tokens = 0
    ema = None
    log_f = open(log_dir / "loss.jsonl", "a" if args.init_preset else "w")
    args_name = "args_continued.json" if args.init_preset else "args.json"
    (log_dir / args_name).write_text(json.dumps(vars(args), indent=1))
    while True:
        x, y, w = next(data)
        step_i += 1
        elapsed = time.time() - train_start
        if step_i == 30:
            rate = 29 / max(elapsed - t_first, 1e-3)
            total_steps = max(step_i + 1, int(rate * budget))
            print(f"~{rate:.2f} steps/s -> planning {total_steps} steps", flush=True)
        if step_i <= args.warmup:
            lr = args.lr * step_i / args.warmup
        else:
            tot = total_steps or 10 ** 9
            frac = min(1.0, (elapsed / budget))
            lr = args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + np.cos(np.pi * frac)))
            del tot
        tv, m0, v0, loss, gn = step(tv, m0, v0, jnp.float32(step_i), jnp.float32(lr),
                                    jnp.asarray(x), jnp.asarray(y), jnp.asarray(w))
        if step_i == 1:
            loss.block_until_ready()
            t_first = time.time() - train_start
            print(f"first step (compile) {t_first:.1f}s", flush=True)
        tokens += int((x != 0).sum())
        if step_i % 10 == 0:
            lv = float(loss)
            ema = lv if ema is None else 0.95 * ema + 0.05 * lv
            rec = {"step": step_i + offset["step"], "batch": args.batch,
                   "context_weight": args.context_weight, "lm_frac": args.lm_frac,
                   "minutes": round(offset["minutes"] + (time.time() - t_start) / 60, 3),
                   "loss": round(lv, 4), "loss_ema": round(ema, 4), "lr": float(lr),
                   "grad_norm": round(float(gn), 3), "tokens": tokens + offset["tokens"]}
            log_f.write(json.dumps(rec) + "\n")
            log_f.flush()
            if step_i % 100 == 0:
                print(rec, flush=True)
        if args.pilot and step_i >= 60:
            dt = time.time() - train_start - t_first
            print(f"PILOT params={n_params} steps/s={(step_i - 1) / dt:.2f} "
                  f"tok/s={tokens / (time.time() - train_start):.0f} loss={float(loss):.3f}")
            return 0
        if time.time() - train_start >= budget:
            break
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            try:
                save(f"step {step_i}")
            except OSError as err:  # a failed checkpoint must not end the run
                print(f"checkpoint failed ({err}); training goes on", flush=True)
            last_ckpt = time.time()
    log_f.close()
    save(f"final step {step_i}", final=True)
    print(f"done: {step_i} steps, {tokens:,} tokens, {(time.time() - t_start) / 60:.1f} min",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
