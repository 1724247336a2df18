"""Shared plumbing for the benchmarks: machine facts, models, tables, plots, per-backend runs.

Not a public API. Each benchmark script imports it as ``from _common import ...`` (the scripts
put ``bench/`` and the repository root on ``sys.path``), chooses the Keras backend before any
keras import, and runs each backend in its own subprocess.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Environment for child processes: quiet TF, no network for hubs.
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
             "PYTHONUNBUFFERED": "1"}

#: The "medium offline-sized" random model of the limit benchmark: about 23M parameters.
MEDIUM = dict(num_layers=6, hidden_dim=512, num_query_heads=8, num_key_value_heads=1,
              head_dim=64, intermediate_dim=4096)


#: Same shape as the practice model (4 layers, hidden 128, 1 KV head), random: ~1M parameters.
SMALL = dict(num_layers=4, hidden_dim=128, num_query_heads=4, num_key_value_heads=1,
             head_dim=32, intermediate_dim=512)


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, load and date: recorded with every result."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": mem_gb,
            "load_1m": round(load[0], 2), "load_5m": round(load[1], 2),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version()}


def machine_line(m: dict[str, Any] | None = None) -> str:
    m = m or machine()
    return (f"{m['cores']} cores, {m['cpu']}, {m['mem_gb']} GB RAM, load {m['load_1m']} "
            f"(1 min) / {m['load_5m']} (5 min), {m['date']}")


def versions() -> str:
    from importlib.metadata import version

    out = []
    for pkg in ("keras", "keras-hub", "jax", "tensorflow", "torch", "transformers"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except Exception:  # noqa: BLE001 - absent package
            pass
    return ", ".join(out)


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table (also readable in a terminal)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def save_plot(fig: Any, name: str, out_dir: Path, m: dict[str, Any], note: str = "") -> Path:
    """Save ``fig`` as ``out_dir/name.png`` with the machine in a footer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    import textwrap

    width = int(fig.get_figwidth() * 16)
    footer = "\n".join(textwrap.wrap(machine_line(m), width)
                       + (textwrap.wrap(note, width) if note else []))
    fig.text(0.01, 0.005, footer, fontsize=7, va="bottom", ha="left", color="#555555")
    fig.subplots_adjust(bottom=0.22)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_results(out_dir: Path, name: str, md: str, rows: Sequence[dict[str, Any]],
                  raw: dict[str, Any] | None = None) -> None:
    """Write ``name.md`` (the printed report), ``name.csv`` (the rows) and, given ``raw``
    (machine and per-backend results), ``name.json``."""
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(md + "\n", encoding="utf-8")
    if rows:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(out_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    if raw is not None:
        (out_dir / f"{name}.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")


# ---------------------------------------------------------------------------------- models
def practice_available() -> bool:
    try:
        from cg_helpers.loading import practice_preset_path

        practice_preset_path()
        return True
    except Exception:  # noqa: BLE001 - missing file
        return False


def make_medium_preset(path: Path, *, sequence_length: int = 4096, vocab_size: int = 1024,
                       **overrides: Any) -> Path:
    """A random float32 Gemma preset with CodeGemma's tokens (cached on disk), by default
    :data:`MEDIUM` (~23M parameters); ``overrides`` change the shape. Stop tokens are never
    chosen (:func:`never_stop`)."""
    from cg_helpers.tiny_model import (build_gemma_causal_lm, builtin_corpus, train_tokenizer,
                                       write_model_info)

    spec = {**MEDIUM, **overrides, "sequence_length": sequence_length, "vocab": vocab_size,
            "stop_rows_zeroed": True}
    stamp = path / "bench_spec.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return path
    path.mkdir(parents=True, exist_ok=True)
    proto = train_tokenizer(builtin_corpus(), vocab_size=vocab_size)
    kwargs = {**MEDIUM, **overrides}
    lm = build_gemma_causal_lm(proto, sequence_length=sequence_length, **kwargs)
    never_stop(lm)
    lm.save_to_preset(str(path))
    write_model_info(path, {"name": "random medium bench model", "kind": "random",
                            "label": "random medium model (untrained, output is noise), not CodeGemma",
                            "context_length": sequence_length, "practice": True})
    stamp.write_text(json.dumps(spec))
    return path


def never_stop(lm: Any) -> None:
    """Zero the (tied) embedding rows of <eos> and the FIM sentinels of a *random* model.

    Their logits become exactly 0 while the maximum over ~1000 random logits is positive, so
    greedy decoding never picks a stop token and every completion runs its full budget (a
    random model otherwise tends to echo the prompt's last token, ``<|fim_middle|>``, and stop
    at once). Decode-speed benchmarks need the full budget.
    """
    import numpy as np

    from cg_helpers.fim import FIM_STOP_TOKENS

    tok = lm.preprocessor.tokenizer
    emb = lm.backbone.token_embedding.embeddings
    arr = np.array(emb.numpy() if hasattr(emb, "numpy") else emb.value)
    arr[[int(tok.token_to_id(t)) for t in FIM_STOP_TOKENS]] = 0.0
    emb.assign(arr)


def snapshot(preset: Path, cache_dir: Path) -> Path:
    """A private copy of ``preset`` (keyed by its files' sizes and times).

    The practice model may be re-saved by a training run while a benchmark runs; every process
    of one benchmark must load the same weights.
    """
    import hashlib
    import shutil

    files = sorted(p for p in preset.rglob("*") if p.is_file())
    key = hashlib.sha1("".join(f"{p.relative_to(preset)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                               for p in files).encode()).hexdigest()[:12]
    target = cache_dir / f"{preset.name}_{key}"
    if not (target / "config.json").is_file():
        tmp = cache_dir / f".{target.name}.{os.getpid()}"
        shutil.copytree(preset, tmp, dirs_exist_ok=True)
        tmp.rename(target)
    return target


def resolve_model(spec: str, cache_dir: Path | None = None) -> Path:
    """A preset directory for ``spec``: ``practice``, ``small``, ``medium``, ``tiny``, ``auto``
    or a path. ``auto`` is the practice model when it is installed, else ``small`` (random, the
    practice model's shape)."""
    cache_dir = cache_dir or Path(os.environ.get("CG_BENCH_CACHE", "/tmp/cg_bench_models"))
    if spec == "auto":
        spec = "practice" if practice_available() else "small"
    if spec == "practice":
        from cg_helpers.loading import practice_preset_path

        return snapshot(practice_preset_path(), cache_dir)
    if spec == "medium":
        return make_medium_preset(cache_dir / "medium")
    if spec == "small":
        return make_medium_preset(cache_dir / "small", **SMALL)
    if spec == "tiny":
        from cg_helpers.tiny_model import make_test_preset

        path = cache_dir / "tiny"
        if not (path / "config.json").is_file():
            make_test_preset(path, sequence_length=4096)
        return path
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {spec!r}: not 'auto', 'practice', 'small', 'medium', 'tiny' or a "
                                "preset directory (no config.json there).")
    return path


def param_count(lm: Any) -> int:
    return int(sum(int(__import__("numpy").prod(v.shape)) for v in lm.weights))


def weight_bytes(lm: Any) -> int:
    import numpy as np

    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in lm.weights))


# ---------------------------------------------------------------------------------- processes
def run_child(script: Path, backend: str, args: Sequence[str], timeout: int = 3000,
              nice: int = 0) -> dict[str, Any]:
    """Run ``script --child BACKEND args`` in a fresh process; returns its JSON result."""
    env = {**os.environ, **CHILD_ENV, "KERAS_BACKEND": backend}
    cmd = [sys.executable, str(script), "--child", backend, *args]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    marker = "@@RESULT@@"
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            out = json.loads(line[len(marker):])
            out.setdefault("wall_seconds", time.perf_counter() - t0)
            return out
    raise RuntimeError(f"{script.name} on {backend} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def emit(result: dict[str, Any]) -> None:
    """Child side of :func:`run_child`."""
    print("@@RESULT@@" + json.dumps(result), flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class CompileCounter:
    """Counts real compiles of KerasHub's generate function.

    JAX: XLA backend compiles of ``compiled_generate_function`` (jax.monitoring events).
    TensorFlow: traces of ``lm.generate_function`` (``experimental_get_tracing_count``),
    read with :meth:`tf_traces` by the caller. torch: never compiles.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._on = False
        import keras

        self.backend = keras.backend.backend()
        if self.backend == "jax":
            import jax

            def listener(event: str, duration: float, **kw: Any) -> None:
                if (self._on and event.endswith("backend_compile_duration")
                        and "generate" in str(kw.get("fun_name", ""))):
                    self.count += 1
                    self.seconds += duration

            jax.monitoring.register_event_duration_secs_listener(listener)

    def start(self) -> None:
        self.count, self.seconds, self._on = 0, 0.0, True

    def stop(self) -> None:
        self._on = False


def tf_traces(lm: Any) -> int:
    fn = getattr(lm, "generate_function", None)
    getter = getattr(fn, "experimental_get_tracing_count", None)
    return int(getter()) if getter else 0
