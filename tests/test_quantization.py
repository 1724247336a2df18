"""Tests for cg_helpers.quantization: int8/int4 on JAX (in process), TensorFlow and torch
(subprocesses), each followed by a completion and a save_to_preset/from_preset round trip.

``roundtrip`` is shared: the TensorFlow run imports this file in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROMPT = "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>"


def roundtrip(preset_dir: str, mode: str, out_dir: str, generate_first: bool = False) -> dict:
    """Load, quantize, complete, save, reload, generate again; report what happened."""
    import keras
    import keras_hub

    from cg_helpers.completion import Completer
    from cg_helpers.loading import load_model
    from cg_helpers.quantization import quantization_mode, quantize, weight_bytes

    loaded = load_model(preset_dir)                  # a LoadedModel; quantize accepts it
    lm = loaded.model
    float_bytes = weight_bytes(lm)
    if generate_first:
        lm.generate(PROMPT, max_length=24, stop_token_ids=None)
    returned = quantize(loaded, mode)
    raw = lm.generate(PROMPT, max_length=24, stop_token_ids=None)   # 24 tokens, no early stop
    result = Completer(lm, name="q", context_length=128, buckets=(64,)).complete(
        "def add(a, b):\n    return ", "\n", max_new_tokens=8)
    lm.save_to_preset(out_dir)
    lm2 = keras_hub.models.GemmaCausalLM.from_preset(out_dir)
    return {
        "backend": keras.config.backend(),
        "same_object": returned is loaded,
        "mode": quantization_mode(lm),
        "float_bytes": float_bytes,
        "quantized_bytes": weight_bytes(lm),
        "raw": raw,
        "completion": {"middle": result.middle, "stop_reason": result.stop_reason,
                       "generated_tokens": result.generated_tokens, "prompt": result.prompt},
        "reloaded_mode": quantization_mode(lm2),
        "reloaded_raw": lm2.generate(PROMPT, max_length=24, stop_token_ids=None),
    }


def check(report: dict, mode: str, backend: str) -> None:
    assert report["backend"] == backend
    assert report["same_object"]
    assert report["mode"] == mode == report["reloaded_mode"]
    ratio = report["quantized_bytes"] / report["float_bytes"]
    assert ratio < (0.35 if mode == "int8" else 0.2), ratio        # vs the float32 test model
    assert report["raw"].startswith(PROMPT) and len(report["raw"]) > len(PROMPT)
    c = report["completion"]
    assert c["stop_reason"] in ("sentinel", "eos", "length")
    assert c["prompt"].startswith("<|fim_prefix|>def add(a, b):")
    assert 0 <= c["generated_tokens"] <= 8
    assert report["reloaded_raw"] == report["raw"]                    # the preset round trip


def test_int8_before_first_generate_jax(test_preset_dir, tmp_path):
    import keras

    check(roundtrip(str(test_preset_dir), "int8", str(tmp_path / "q")), "int8",
          keras.config.backend())


def test_int4_after_first_generate_jax(test_preset_dir, tmp_path):
    """After a generate, the compiled function must be reset, or it would use stale weights."""
    import keras

    check(roundtrip(str(test_preset_dir), "int4", str(tmp_path / "q"), generate_first=True),
          "int4", keras.config.backend())


def test_recovers_from_failed_plain_quantize(test_preset_dir):
    """Plain lm.quantize fails on JAX/TF before the first generate, after quantizing the
    backbone; quantize() finishes the job and the model completes."""
    import keras
    import keras_hub

    from cg_helpers.completion import Completer
    from cg_helpers.quantization import quantization_mode, quantize

    if keras.config.backend() == "torch":
        pytest.skip("plain lm.quantize works on torch")
    lm = keras_hub.models.GemmaCausalLM.from_preset(str(test_preset_dir))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="isn't yet built"):
        lm.quantize("int8")
    assert quantization_mode(lm) == "int8"                 # half-done
    with pytest.warns(RuntimeWarning, match="failed half-way"):
        assert quantize(lm, "int8") is lm
    with pytest.raises(ValueError, match=r"already quantized \(int8\)"):
        quantize(lm, "int4")
    result = Completer(lm, name="q", context_length=128, buckets=(64,)).complete(
        "x = ", "\n", max_new_tokens=4)
    assert result.stop_reason in ("sentinel", "eos", "length")


def test_argument_errors(test_lm):
    from cg_helpers.quantization import quantize

    with pytest.raises(ValueError, match="int8, int4"):
        quantize(test_lm, "float8")
    with pytest.raises(TypeError, match="CausalLM"):
        quantize(object())


TF_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_quantization import roundtrip
print(json.dumps({m: roundtrip(sys.argv[2], m, sys.argv[3] + "/" + m) for m in ("int8", "int4")}))
"""


@pytest.fixture(scope="module", params=["tensorflow", "torch"])
def other_backend_reports(request, test_preset_dir, tmp_path_factory):
    """Both modes in one fresh interpreter per backend (the suite itself runs on JAX)."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(KERAS_BACKEND=request.param, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path_factory.mktemp(f"q_{request.param}")
    proc = subprocess.run([sys.executable, "-c", TF_SCRIPT, str(REPO / "tests"),
                           str(test_preset_dir), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_other_backends_subprocess(other_backend_reports, mode):
    backend, reports = other_backend_reports
    check(reports[mode], mode, backend)
