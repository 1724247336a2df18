"""Smoke tests: every benchmark script runs on a tiny setting and writes its table and plot.

The benchmarks themselves (bench/*.py) take minutes; here each runs with ``--tiny`` on the random
test model, in a subprocess, into a temp dir. Plus a behaviour test of the proposed bounded
decode (bench/_proposed.py): same output as the Completer, and it stops at the budget.
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
                         "(c3) Completer + bounded decode (proposed)"}
    # (b) is the reference; the Completer (and the proposed fix) must agree with it.
    assert rows["(b) exact max_length"]["correct"] == "3/3"
    assert rows["(c) Completer"]["correct"] == "3/3"
    assert rows["(c3) Completer + bounded decode (proposed)"]["correct"] == "3/3"
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


def test_bounded_decode_matches_completer_and_stops_at_budget(test_preset_dir):
    import keras_hub

    sys.path.insert(0, str(BENCH))
    try:
        from _proposed import BoundedCompleter
    finally:
        sys.path.remove(str(BENCH))
    from cg_helpers.completion import Completer

    plain = Completer(keras_hub.models.GemmaCausalLM.from_preset(str(test_preset_dir)),
                      context_length=512)
    bounded = BoundedCompleter(keras_hub.models.GemmaCausalLM.from_preset(str(test_preset_dir)),
                               context_length=512)
    reqs = [("def add(a, b):\n    ", "\n"), ("import ", "\nsys.exit(0)\n")]
    for k in (1, 6):
        want = plain.complete_many(reqs, max_new_tokens=k, progress=False, batch_size=2)
        got = bounded.complete_many(reqs, max_new_tokens=k, progress=False, batch_size=2)
        assert [r.middle for r in got] == [r.middle for r in want]
        assert [r.stop_reason for r in got] == [r.stop_reason for r in want]
    # The compiled loop really stops at the budget: a stop token right after it (unless the
    # model stopped by itself earlier, as plain generate shows).
    import numpy as np

    fn = bounded.lm.make_generate_function()
    ids = np.zeros((1, 128), "int32")
    ids[0, :4] = [2, 416, 391, 884]
    mask = np.zeros((1, 128), bool)
    mask[0, :4] = True
    stops = bounded.fim_stop_ids

    def first_stop(out):
        toks = np.asarray(out["token_ids"])[0]
        return next((i for i in range(4, 128) if int(toks[i]) in stops), None)

    free = first_stop(fn({"token_ids": ids, "padding_mask": mask}, stop_token_ids=stops))
    for budget in (1, 5):
        out = fn({"token_ids": ids, "padding_mask": mask,
                  "end_index": np.array([4 + budget], "int32")}, stop_token_ids=stops)
        expect = 4 + budget if free is None else min(free, 4 + budget)
        assert first_stop(out) == expect
        assert int(np.asarray(out["padding_mask"])[0].sum()) == expect + 1
