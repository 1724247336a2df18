"""Smoke tests: every benchmark script runs on a tiny setting and writes its table and plot.

The benchmarks themselves (bench/*.py) take minutes; here each runs with ``--tiny`` on the random
test model, in a subprocess, into a temp dir. The bounded decode (first measured here as a
proposal) is tested in tests/test_completion.py.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _run(script: str, *args: str, timeout: int = 600) -> str:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_compile_once_tiny(test_preset_dir, tmp_path):
    out = _run("compile_once.py", "--tiny", "--model", str(test_preset_dir), "--out", str(tmp_path),
               "--nice", "0")
    assert "Machine:" in out and "cores" in out
    rows = {r["method"]: r for r in _csv(tmp_path / "compile_once.csv")}
    assert set(rows) == {"(a) seed: max_length=128", "(b) exact max_length", "(c) Completer",
                         "(c3) Completer + bounded decode (now shipped)"}
    # (b) is the reference; the Completer (and the proposed fix) must agree with it.
    assert rows["(b) exact max_length"]["correct"] == "3/3"
    assert rows["(c) Completer"]["correct"] == "3/3"
    assert rows["(c3) Completer + bounded decode (now shipped)"]["correct"] == "3/3"
    # One of the three tiny prompts is over 128 tokens: the seed's way loses its suffix.
    assert rows["(a) seed: max_length=128"]["lost_suffix"] == "1"
    assert int(rows["(b) exact max_length"]["compiles"]) >= 2
    assert (tmp_path / "compile_once.png").stat().st_size > 10_000


def test_streaming_tiny(test_preset_dir, tmp_path):
    _run("streaming.py", "--tiny", "--model", str(test_preset_dir), "--out", str(tmp_path),
         "--nice", "0")
    (row,) = _csv(tmp_path / "streaming.csv")
    assert row["identical"] == "True"
    assert 0 < float(row["stream_first_s"]) <= float(row["stream_total_s"])
    assert (tmp_path / "streaming.png").is_file()


def test_limit_tiny(test_preset_dir, tmp_path):
    out = _run("limit.py", "--tiny", "--model", str(test_preset_dir), "--out", str(tmp_path),
               "--nice", "0")
    (row,) = _csv(tmp_path / "limit.csv")
    assert float(row["bandwidth_GB/s"]) > 0.1
    assert float(row["bound_ms"]) > 0
    assert "Best backend" in out
    assert (tmp_path / "limit.png").is_file()


def test_keras_vs_transformers_tiny(test_preset_dir, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    _run("keras_vs_transformers.py", "--tiny", "--model", str(test_preset_dir), "--out",
         str(tmp_path), "--nice", "0")
    rows = _csv(tmp_path / "keras_vs_transformers.csv")
    assert len(rows) == 3            # Keras, Keras + bounded decode, transformers 1 thread
    assert all(r["identical_greedy"] == "2/2" for r in rows)
    assert (tmp_path / "keras_vs_transformers.png").is_file()


def test_t4_plan_paper_and_runner(test_preset_dir, tmp_path):
    out = _run("t4_plan.py")
    assert "code_gemma_7b_en" in out and "320 GB/s" in out
    # 2B float16 on a T4: 5.01 GB / 320 GB/s = 15.7 ms per token at best.
    assert "15.7" in out
    target = tmp_path / "runs.csv"
    out = _run("t4_plan.py", "--run", "--preset", str(test_preset_dir), "--dtype", "float32",
               "--n", "2", "--max-new-tokens", "4", "--csv", str(target))
    rows = _csv(target)
    assert len(rows) == 2
    assert {r["backend"] for r in rows} == {"jax"} and rows[0]["dtype"] == "float32"
    assert all(int(r["new_tokens"]) <= 5 and float(r["seconds"]) > 0 for r in rows)
    assert "Measured" in out
