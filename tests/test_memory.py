"""Tests for cg_helpers.memory: dtype choice, verdicts, ways out, table and chart."""

import io

import pytest

from cg_helpers import memory as mem
from cg_helpers.loading import PRESETS
from cg_helpers.runtime import DeviceInfo

P2B, P7B = "code_gemma_2b_en", "code_gemma_7b_en"


@pytest.mark.parametrize("device,expected", [
    ("T4", "float16"), ("Tesla T4", "float16"), ("Tesla V100-SXM2-16GB", "float16"),
    ("Tesla P100-PCIE-16GB", "float16"), ("NVIDIA L4", "bfloat16"),
    ("NVIDIA A100-SXM4-40GB", "bfloat16"), ("NVIDIA H100 80GB HBM3", "bfloat16"),
    ("v3-8", "bfloat16"), ("TPU v5e-1", "bfloat16"), ("cpu", "float32"),
])
def test_choose_dtype_by_device(device, expected):
    choice = mem.choose_dtype(device)
    assert choice == expected and isinstance(choice, str) and choice.reason


def test_choose_dtype_from_detected_devices_and_compute_capability():
    assert mem.choose_dtype(DeviceInfo("gpu", "Tesla T4", 15360 * 2**20, "7.5")) == "float16"
    # an unknown GPU decides by compute capability: >= 8.0 (Ampere) has bfloat16
    assert mem.choose_dtype(DeviceInfo("gpu", "Future GPU", 48 * 10**9, "9.0")) == "bfloat16"
    assert mem.choose_dtype(DeviceInfo("gpu", "Old GPU", 12 * 10**9, "6.1")) == "float16"


def test_choose_dtype_here_is_float32_without_gpu(monkeypatch):
    from cg_helpers import runtime

    monkeypatch.setattr(runtime, "detect_devices", lambda **kw: [])
    assert mem.choose_dtype() == "float32"


def test_override_wins_and_warns_for_bf16_on_t4():
    assert mem.choose_dtype("cpu", override="bfloat16") == "bfloat16"
    choice = mem.choose_dtype("T4", override="bfloat16")
    assert choice == "bfloat16" and "no native bfloat16" in choice.reason
    with pytest.raises(ValueError, match="int8/int4"):
        mem.choose_dtype("T4", override="int8")


def test_tpu_names_from_the_environment():
    assert mem.resolve_device("TPU v5litepod-8").name == "TPU v5e-8"
    assert mem.resolve_device(DeviceInfo("tpu", "TPU v3-8")).count == 8
    odd = mem.resolve_device(DeviceInfo("tpu", "TPU v9x-4096"))
    assert odd.kind == "tpu" and odd.bf16


def test_unknown_device_name_lists_known():
    with pytest.raises(ValueError, match="Known: T4"):
        mem.resolve_device("GeForce 9000")


def test_2b_fp16_fits_t4():
    plan = mem.memory_plan(P2B, "float16", "T4", max_length=2048)
    assert plan.fits and plan.options == []
    assert plan.weights_bytes == PRESETS[P2B].weight_bytes("float16")
    assert plan.available_bytes == 15 * 10**9


def test_7b_bf16_does_not_fit_t4_and_offers_ways_out():
    plan = mem.memory_plan(P7B, "bfloat16", "T4")
    assert not plan.fits and plan.margin_bytes < 0
    by_label = {o.label.split(" (")[0]: o for o in plan.options}
    assert by_label["int8 quantization"].fits and by_label["int4 quantization"].fits
    assert "17.1 GB" in by_label["int8 quantization"].note        # float model in host RAM first
    assert "12.7 GB" in by_label["int8 quantization"].note and "not enough" in by_label["int8 quantization"].note
    assert by_label["a larger runtime"].fits
    shard = by_label["sharding over 2 x T4"]
    assert shard.fits and shard.plan.num_devices == 2
    assert shard.plan.weights_bytes == pytest.approx(plan.weights_bytes / 2, abs=1)
    text = str(plan)
    assert "DOES NOT FIT" in text and "Ways out" in text and "int8 quantization" in text
    assert "<li>" in plan._repr_html_()


def test_7b_int8_fits_t4():
    plan = mem.memory_plan(P7B, "int8", "T4")
    assert plan.fits
    assert plan.weights_bytes == PRESETS[P7B].params   # 1 byte per parameter


def test_quantization_note_with_enough_host_ram():
    plan = mem.memory_plan(P7B, "bfloat16", "T4", host_memory_bytes=32 * 10**9)
    (int8,) = [o for o in plan.options if o.label == "int8 quantization"]
    assert "enough." in int8.note and "not enough" not in int8.note


def test_kv_cache_grows_with_length_and_batch():
    sizes = [mem.memory_plan(P7B, "int8", "T4", n).kv_cache_bytes for n in (256, 1024, 4096)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] == 4 * sizes[1] == PRESETS[P7B].kv_cache_bytes_per_token("int8") * 4096
    assert mem.memory_plan(P7B, "int8", "T4", 1024, batch_size=4).kv_cache_bytes == 4 * sizes[1]
    # long enough, 7B int8 stops fitting a T4
    assert not mem.memory_plan(P7B, "int8", "T4", 8192, batch_size=2).fits


def test_bytes_device_and_tpu_sharding():
    assert mem.memory_plan(P2B, "bfloat16", 24e9).fits
    plan = mem.memory_plan(P7B, "bfloat16", "v3-8")
    assert not plan.fits                      # one 16 GB core is not enough
    shard = [o for o in plan.options if o.label.startswith("sharding over 8")]
    assert shard and shard[0].fits
    assert mem.memory_plan(P7B, "bfloat16", "v3-8", num_devices=8).fits


def test_default_dtype_follows_device():
    assert mem.memory_plan(P2B, None, "T4").dtype == "float16"
    assert mem.memory_plan(P2B, None, "A100-40GB").dtype == "bfloat16"


def test_bad_inputs():
    with pytest.raises(ValueError, match="Unknown preset"):
        mem.memory_plan("gemma_9b", "float16", "T4")
    with pytest.raises(ValueError, match="Unknown dtype"):
        mem.memory_plan(P2B, "fp8", "T4")
    with pytest.raises(ValueError, match="max_length"):
        mem.memory_plan(P2B, "float16", "T4", 0)


def test_chart_stacks_parts_and_draws_device_line():
    fig = mem.plot_memory_plan([P2B, P7B], dtypes=["float16", "int8", "int4"], device="T4")
    ax = fig.axes[0]
    assert len(ax.patches) == 6 * 3                       # 6 bars x (weights, KV, headroom)
    heights = [p.get_height() for p in ax.patches[:6]]    # weights bars, in plan order
    assert heights[3] == pytest.approx(PRESETS[P7B].weight_bytes("float16") / 1e9)
    assert any(abs(line.get_ydata()[0] - 15.0) < 1e-9 for line in ax.get_lines())
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("too big") == 1 and labels.count("fits") == 5
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_chart_of_plans_on_different_devices():
    plans = [mem.memory_plan(P7B, "bfloat16", d) for d in ("T4", "L4", "A100-40GB")]
    fig = mem.plot_memory_plan(plans)
    assert len(fig.axes[0].patches) == 9


def test_dtype_choice_is_accepted_by_keras_as_a_plain_string():
    import json

    import keras

    choice = mem.choose_dtype("T4")
    policy = keras.dtype_policies.get(choice)
    assert policy.compute_dtype == "float16" and policy.variable_dtype == "float16"
    assert json.loads(json.dumps(keras.dtype_policies.serialize(policy)))
    layer = keras.layers.Dense(2, dtype=choice)
    layer.build((None, 3))
    assert layer.kernel.dtype == "float16"
