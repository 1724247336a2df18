"""Tests for cg_helpers.distributed.

Pure arithmetic (dimensions, layout checks, per-device memory, mesh choice) runs in-process.
Everything that needs several devices runs once, in a subprocess with 8 virtual CPU devices
(``tests/_distributed_worker.py``), because the suite's JAX already has one device; the tests
below assert on the JSON it writes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cg_helpers.distributed import (LayoutError, ModelDims, check_batch, check_layout, model_dims,
                                    per_device_memory, suggest_mesh)
from cg_helpers.loading import PRESETS

ROOT = Path(__file__).resolve().parents[1]
MESHES = ["(1, 8)", "(2, 4)", "(8, 1)"]


# ---------------------------------------------------------------- dimensions and checks
@pytest.mark.parametrize("name", list(PRESETS))
def test_dims_reproduce_the_preset_parameter_counts(name):
    # The layout arithmetic uses these shapes: they must add up to the published sizes exactly.
    assert model_dims(name).params == PRESETS[name].params


def test_2b_has_one_kv_head_and_7b_sixteen():
    assert model_dims("code_gemma_2b_en").num_key_value_heads == 1
    assert model_dims("code_gemma_7b_en").num_key_value_heads == 16
    assert not model_dims("code_gemma_2b_en").kv_split(2)
    assert model_dims("code_gemma_7b_en").kv_split(8)


@pytest.mark.parametrize("preset,mesh", [("code_gemma_2b_en", (1, 8)), ("code_gemma_2b_en", (2, 4)),
                                         ("code_gemma_7b_en", (1, 2)), ("code_gemma_7b_en", (1, 16)),
                                         ("code_gemma_7b_en", (8, 1))])
def test_valid_layouts_pass(preset, mesh):
    check_layout(model_dims(preset), mesh)


def test_indivisible_heads_name_the_dimension_and_the_choices():
    with pytest.raises(LayoutError) as err:
        check_layout(model_dims("code_gemma_2b_en"), (2, 3))
    msg = str(err.value)
    assert "num_query_heads=8 is not divisible by 3" in msg
    assert "1, 2, 4, 8" in msg                       # valid model axes for 2B
    assert "(6, 1)" in msg                            # what fits 6 devices


def test_indivisible_vocab_and_ffw_are_reported():
    dims = ModelDims("odd", vocabulary_size=1001, hidden_dim=64, num_layers=2, num_query_heads=8,
                     num_key_value_heads=1, head_dim=8, ffw_dim=96)
    with pytest.raises(LayoutError, match="vocabulary_size=1001 is not divisible by 2"):
        check_layout(dims, (1, 2))
    with pytest.raises(LayoutError, match=r"ffw_dim\)=96 is not divisible by 64"):
        check_layout(ModelDims("w", 1024, 64, 2, 64, 1, 1, 96), (1, 64))
    assert dims.valid_model_axes() == [1]


def test_batch_must_divide_the_batch_axis():
    check_batch(8, (4, 2))
    check_batch(4, (1, 8))                            # no batch axis: anything goes
    with pytest.raises(LayoutError, match="batch_size=6 .* axis of 4 .* Use batch_size=4 or 8"):
        check_batch(6, (4, 2))
    with pytest.raises(LayoutError, match="Use batch_size=8"):
        check_batch(3, (8, 1))
    with pytest.raises(ValueError):
        check_batch(0, (2, 1))


def test_bad_mesh_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(batch, model\)"):
        check_layout(model_dims("code_gemma_7b_en"), (1, 2, 2))


# ---------------------------------------------------------------- memory and mesh choice
def test_unsplit_memory_equals_the_preset_table():
    for name in ("code_gemma_2b_en", "code_gemma_7b_en"):
        info = PRESETS[name]
        m = per_device_memory(name, (1, 1), "float16", tokens=1000)
        assert m.weight_bytes == info.weight_bytes("float16")
        assert m.kv_cache_bytes == info.kv_cache_bytes_per_token("float16") * 1000


def test_7b_split_over_model_axis_divides_weights_and_cache():
    whole = per_device_memory("code_gemma_7b_en", (1, 1), "float16")
    for m in (2, 4, 8):
        part = per_device_memory("code_gemma_7b_en", (1, m), "float16")
        # norms stay whole: a few KB more than an exact split
        assert 0 <= part.weight_bytes - whole.weight_bytes / m < 1e6
        assert part.kv_cache_bytes == whole.kv_cache_bytes // m
    # the batch axis replicates weights
    assert per_device_memory("code_gemma_7b_en", (2, 4), "float16").weight_bytes == \
        per_device_memory("code_gemma_7b_en", (1, 4), "float16").weight_bytes


def test_2b_replicates_its_single_kv_head():
    whole = per_device_memory("code_gemma_2b_en", (1, 1), "bfloat16")
    part = per_device_memory("code_gemma_2b_en", (1, 8), "bfloat16")
    assert part.kv_cache_bytes == whole.kv_cache_bytes           # cache not split
    assert part.weight_bytes > whole.weight_bytes / 8            # k/v kernels whole
    assert any("replicated" in n for n in part.notes)


def test_agrees_with_the_memory_plan_when_everything_splits():
    from cg_helpers.memory import memory_plan

    plan = memory_plan("code_gemma_7b_en", "float16", "T4", max_length=1024, num_devices=2)
    mine = per_device_memory("code_gemma_7b_en", (1, 2), "float16", tokens=1024)
    assert abs(plan.weights_bytes - mine.weight_bytes) / mine.weight_bytes < 1e-3
    assert plan.kv_cache_bytes == mine.kv_cache_bytes


def test_suggest_mesh():
    # 7B float16 (17 GB) needs both T4s of Kaggle's 2xT4; on a TPU v3-8 (16 GB cores) 2 cores
    # hold one copy, so 4 copies serve a batch of 8; without a memory limit: all on "model".
    assert suggest_mesh("code_gemma_7b_en", 2, device="T4", dtype="float16") == (1, 2)
    assert suggest_mesh("code_gemma_7b_en", 8, device="TPU v3-8", batch_size=8) == (4, 2)
    assert suggest_mesh("code_gemma_2b_en", 8, device="TPU v3-8", batch_size=8) == (8, 1)
    assert suggest_mesh("code_gemma_7b_en", 8) == (1, 8)
    assert suggest_mesh("code_gemma_2b_en", 6) == (3, 2)          # 8 heads: 2 divides, 3/6 not
    with pytest.raises(LayoutError, match="does not fit 2 x T4"):
        suggest_mesh("code_gemma_7b_en", 2, device="T4", dtype="float32")


def test_module_does_not_import_keras():
    code = "import sys, cg_helpers.distributed; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- 8 virtual devices (JAX)
# One subprocess (about 45 s of CPU) builds two small models and runs every multi-device check.
multi = pytest.mark.slow


@pytest.fixture(scope="module")
def multi_device(tmp_path_factory):
    work = tmp_path_factory.mktemp("distributed")
    out = work / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "KERAS_BACKEND")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "_distributed_worker.py"),
                           str(out), str(work)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


@multi
def test_worker_saw_eight_devices(multi_device):
    assert len(multi_device["devices"]) == 8


@multi
@pytest.mark.parametrize("model", ["like_2b", "like_7b"])
@pytest.mark.parametrize("mesh", MESHES)
def test_sharded_greedy_equals_unsharded(multi_device, model, mesh):
    entry = multi_device["models"][model]
    ref = entry["reference"]
    assert sum(r[1] for r in ref) > 0                   # the reference generated something
    assert entry["meshes"][mesh]["results"] == ref
    assert entry["meshes"][mesh]["info_mesh"] == json.loads(mesh.replace("(", "[").replace(")", "]"))


@multi
@pytest.mark.parametrize("model", ["like_2b", "like_7b"])
def test_streaming_on_a_sharded_model_matches(multi_device, model):
    entry = multi_device["models"][model]
    assert entry["meshes"]["(2, 4)"]["stream"] == entry["reference"][0][0]


@multi
@pytest.mark.parametrize("model", ["like_2b", "like_7b"])
@pytest.mark.parametrize("mesh", MESHES)
def test_weights_are_split_over_the_model_axis(multi_device, model, mesh):
    entry = multi_device["models"][model]
    dims = entry["dims"]
    model_axis = int(mesh.strip("()").split(",")[1])
    place = entry["meshes"][mesh]["placement"]
    q, k = place["query"], place["key"]
    assert q["shape"][0] == dims["num_query_heads"]
    assert q["shard_shape"] == [dims["num_query_heads"] // model_axis] + q["shape"][1:]
    assert place["embedding"]["shard_shape"] == [dims["vocabulary_size"] // model_axis,
                                                 dims["hidden_dim"]]
    assert place["ffw_gating"]["shard_shape"] == [dims["hidden_dim"], dims["ffw_dim"] // model_axis]
    assert place["ffw_linear"]["shard_shape"] == [dims["ffw_dim"] // model_axis, dims["hidden_dim"]]
    assert place["norm"]["shard_shape"] == place["norm"]["shape"]         # replicated
    assert q["num_devices"] == 8 and q["distinct_shards"] == model_axis
    if dims["num_key_value_heads"] % model_axis == 0:
        assert k["shard_shape"][0] == dims["num_key_value_heads"] // model_axis
    else:                                               # 2B-like: one key/value head, replicated
        assert k["shard_shape"] == k["shape"] and k["distinct_shards"] == 1


@multi
def test_data_parallel_equals_one_device(multi_device):
    ref = multi_device["dp_reference"]
    assert len(ref) == 8 and sum(r[1] for r in ref) > 0
    assert multi_device["dp_results"] == ref
    q = multi_device["dp_placement"]["query"]
    assert q["shard_shape"] == q["shape"] and q["num_devices"] == 8     # replicated everywhere
    assert multi_device["dp_output_shard_shape"] == [1, 128]           # 8 rows, 1 per device


@multi
def test_default_mesh_puts_every_device_on_the_model_axis(multi_device):
    assert multi_device["default_mesh"] == [1, 8]


@multi
def test_distributed_errors_are_clear(multi_device):
    errors = multi_device["errors"]
    assert errors["heads_over_3"]["type"] == "LayoutError"
    assert "num_query_heads=8 is not divisible by 3" in errors["heads_over_3"]["message"]
    assert errors["mesh_16_on_8"]["type"] == "LayoutError"
    assert "(1, 8)" in errors["mesh_16_on_8"]["message"]
    batch = multi_device["dp_batch_error"]
    assert batch["type"] == "LayoutError" and "Use batch_size=8" in batch["message"]


@multi
def test_stock_layout_fails_on_one_kv_head(multi_device):
    # Why codegemma_layout_map exists: KerasHub's own map cannot split one key/value head.
    err = multi_device["errors"]["stock_layout_one_kv_head"]
    assert err is not None and "dimension size is 1" in err["message"]

# Notebook 09 is executed (on 8 virtual devices) by tests/test_notebooks.py::test_09_scale_out.
