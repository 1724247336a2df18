"""Tests for cg_helpers.backend: names, settings, and the import guard (in fresh interpreters)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cg_helpers import backend as be

REPO = Path(__file__).resolve().parents[1]


ENV_KEYS = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS", "TF_FORCE_GPU_ALLOW_GROWTH",
            "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE")


@pytest.fixture(autouse=True)
def restore_environment(monkeypatch):
    """use_backend writes os.environ: let monkeypatch put every variable back afterwards."""
    for key in ENV_KEYS:
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:                               # record "absent" so that undo removes it again
            monkeypatch.setenv(key, "")
            monkeypatch.delenv(key)


def run_python(code: str, env_extra: dict | None = None, timeout: int = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON line last."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("given,expected", [
    ("jax", "jax"), ("JAX", "jax"), (" tensorflow ", "tensorflow"), ("tf", "tensorflow"),
    ("torch", "torch"), ("PyTorch", "torch"),
])
def test_normalize_accepts_names_and_aliases(given, expected):
    assert be.normalize_backend(given) == expected


@pytest.mark.parametrize("typo,suggest", [("jaxx", "jax"), ("tensorflwo", "tensorflow"),
                                          ("troch", "torch"), ("pytroch", "torch")])
def test_misspelled_backend_lists_valid_names_and_suggests(typo, suggest):
    with pytest.raises(ValueError) as err:
        be.use_backend(typo)
    msg = str(err.value)
    assert f"Did you mean {suggest!r}" in msg
    for valid in be.VALID_BACKENDS:
        assert valid in msg


def test_nonsense_backend_has_no_suggestion_but_lists_valid():
    with pytest.raises(ValueError, match="Valid backends: jax, tensorflow, torch") as err:
        be.normalize_backend("mxnet")
    assert "Did you mean" not in str(err.value)


def test_guard_in_process_against_the_suite_backend(monkeypatch):
    """The suite already imported keras (conftest picks the backend): switching must fail."""
    import keras

    monkeypatch.setenv("KERAS_BACKEND", keras.config.backend())
    current = keras.config.backend()
    other = next(b for b in be.VALID_BACKENDS if b != current)
    with pytest.raises(be.BackendAlreadyImportedError, match="Restart session"):
        be.use_backend(other)
    assert os.environ["KERAS_BACKEND"] == current      # nothing was changed
    assert be.use_backend(current).backend == current   # same backend: fine


def test_jax_settings_set_environment(monkeypatch):
    for key in ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(be, "keras_backend_in_use", lambda: None)
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    s = be.use_backend("jax", jax_memory_fraction=0.9, jax_preallocate=False)
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.9"
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert s.environment["KERAS_BACKEND"] == "jax"
    with pytest.raises(ValueError, match="jax_memory_fraction"):
        be.use_backend("jax", jax_memory_fraction=1.5)


def test_torch_threads_auto_on_small_cpu_sets_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(be, "keras_backend_in_use", lambda: None)
    monkeypatch.setattr(be.os, "cpu_count", lambda: 2)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    s = be.use_backend("pytorch")
    assert s.backend == "torch" and os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(be.os, "cpu_count", lambda: 32)
    be.use_backend("torch")
    assert "OMP_NUM_THREADS" not in os.environ


def test_importing_package_and_backend_never_imports_keras():
    out = run_python("""
        import json, sys
        import cg_helpers, cg_helpers.backend
        heavy = [m for m in ("keras", "keras_hub", "jax", "tensorflow", "torch") if m in sys.modules]
        print(json.dumps({"heavy": heavy}))
    """)
    assert out["heavy"] == []


GUARD_SCRIPT = """
    import json, sys
    from cg_helpers.backend import use_backend, BackendAlreadyImportedError
    out = {}
    out["settings"] = use_backend("tf").environment
    import keras
    out["keras_backend"] = keras.config.backend()
    out["same_again"] = use_backend("tensorflow").backend
    for other in ("jax", "torch"):
        try:
            use_backend(other)
            out[other] = "no error"
        except BackendAlreadyImportedError as e:
            out[other] = str(e)
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def guard_run():
    return run_python(GUARD_SCRIPT)


def test_use_backend_before_import_selects_backend(guard_run):
    assert guard_run["settings"]["KERAS_BACKEND"] == "tensorflow"
    assert guard_run["keras_backend"] == "tensorflow"
    assert guard_run["same_again"] == "tensorflow"


@pytest.mark.parametrize("other", ["jax", "torch"])
def test_guard_raises_after_keras_imported_with_other_backend(guard_run, other):
    msg = guard_run[other]
    assert msg != "no error"
    assert "already imported with the 'tensorflow' backend" in msg
    assert "Runtime → Restart session" in msg


def test_torch_threads_applied_when_torch_starts():
    out = run_python("""
        import json
        from cg_helpers.backend import use_backend
        use_backend("torch", torch_threads=1)
        import keras, torch
        print(json.dumps({"backend": keras.config.backend(), "threads": torch.get_num_threads()}))
    """)
    assert out == {"backend": "torch", "threads": 1}
