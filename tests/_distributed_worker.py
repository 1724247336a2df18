"""Multi-device checks for cg_helpers.distributed, run by tests/test_distributed.py in a subprocess.

JAX fixes its device count when first imported, and the main test process already imported it
with one CPU device. This script sets ``--xla_force_host_platform_device_count=8`` first, runs
every check on 8 virtual CPU devices and writes the observations as JSON; the test asserts on it.

Usage: python tests/_distributed_worker.py OUT.json WORKDIR
"""

import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

REQUESTS = [
    ("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"),
    ("import ", "\n\nsys.exit(0)\n"),
    ("for i in range(", "):\n    print(i)\n"),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = ", "\n"),
]
MAX_NEW = 8
MESHES = [(1, 8), (2, 4), (8, 1)]
PLACED = {"query": r"decoder_block_0/attention/query/kernel",
          "key": r"decoder_block_0/attention/key/kernel",
          "embedding": r"token_embedding/embeddings",
          "ffw_gating": r"decoder_block_0/ffw_gating/kernel",
          "ffw_linear": r"decoder_block_0/ffw_linear/kernel",
          "norm": r"decoder_block_0/pre_attention_norm/scale"}


def results_of(completer, requests, batch_size):
    rs = completer.complete_many(requests, max_new_tokens=MAX_NEW, batch_size=batch_size,
                                 progress=False)
    return [[r.middle, r.generated_tokens, r.stop_reason] for r in rs]


def placement(model):
    from cg_helpers.distributed import weight_placement

    out = {}
    for key, pattern in PLACED.items():
        (p,) = weight_placement(model, [pattern])
        out[key] = {"shape": list(p.shape), "shard_shape": list(p.shard_shape), "spec": p.spec,
                    "num_devices": p.num_devices, "distinct_shards": p.distinct_shards}
    return out


def error_of(fn):
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - we report the type and message
        return {"type": type(err).__name__, "message": str(err)}
    return None


def main(out_path, workdir):
    work = Path(workdir)
    report = {"timings": {}}
    t0 = time.perf_counter()
    from cg_helpers.tiny_model import build_gemma_causal_lm, make_test_preset, write_model_info

    # 2B-like: 8 query heads, ONE key/value head (multi-query attention, like CodeGemma 2B).
    small = make_test_preset(work / "like_2b", vocab_size=1024, num_layers=2, hidden_dim=64,
                             num_query_heads=8, num_key_value_heads=1, head_dim=8,
                             intermediate_dim=128, sequence_length=256)
    # 7B-shaped: 16 query and 16 key/value heads, 4 layers, tiny head_dim and hidden size.
    proto = (small / "assets" / "tokenizer" / "vocabulary.spm").read_bytes()
    lm7 = build_gemma_causal_lm(proto, num_layers=4, hidden_dim=32, num_query_heads=16,
                                num_key_value_heads=16, head_dim=4, intermediate_dim=64,
                                sequence_length=256, seed=1)
    shaped_7b = work / "like_7b"
    lm7.save_to_preset(str(shaped_7b))
    write_model_info(shaped_7b, {"name": "7B-shaped random test model", "label": "random",
                                 "context_length": 256, "practice": True})
    del lm7
    report["timings"]["build_presets"] = time.perf_counter() - t0

    import keras
    from cg_helpers.completion import Completer
    from cg_helpers.distributed import (complete_many_parallel, load_data_parallel,
                                        load_sharded, model_dims)
    from cg_helpers.loading import load_model

    devices = keras.distribution.list_devices()
    report["devices"] = [str(d) for d in devices]
    report["models"] = {}
    refs = {}
    for name, preset in (("like_2b", small), ("like_7b", shaped_7b)):
        t = time.perf_counter()
        ref = Completer.from_loaded(load_model(preset))
        entry = {"dims": model_dims(preset).__dict__,
                 "reference": results_of(ref, REQUESTS, len(REQUESTS)), "meshes": {}}
        refs[name] = ref
        for mesh in MESHES:
            loaded = load_sharded(preset, mesh_shape=mesh)
            c = Completer.from_loaded(loaded)
            entry["meshes"][str(mesh)] = {
                "results": results_of(c, REQUESTS, len(REQUESTS)),
                "placement": placement(loaded.model),
                "info_mesh": list(loaded.info["mesh_shape"]),
            }
            if mesh == (2, 4):      # streaming (its own jitted prefill/step) on a sharded model
                entry["meshes"][str(mesh)]["stream"] = "".join(
                    c.stream(*REQUESTS[0], max_new_tokens=MAX_NEW))
        report["models"][name] = entry
        report["timings"][name] = time.perf_counter() - t

    # Data-parallel complete_many over 8 devices vs one device, 8 prompts in one batch.
    t = time.perf_counter()
    many = [(b + str(i), a) for i in range(2) for b, a in REQUESTS]
    report["dp_reference"] = results_of(refs["like_2b"], many, 8)
    dp = load_data_parallel(small)
    c = Completer.from_loaded(dp)
    report["dp_results"] = [[r.middle, r.generated_tokens, r.stop_reason] for r in
                            complete_many_parallel(c, many, max_new_tokens=MAX_NEW, progress=False)]
    report["dp_placement"] = placement(dp.model)
    import numpy as np

    ids = np.zeros((8, 128), dtype="int32")
    ids[:, 0] = 2
    mask = np.zeros((8, 128), dtype=bool)
    mask[:, 0] = True
    out = dp.model.make_generate_function()({"token_ids": ids, "padding_mask": mask},
                                            stop_token_ids=None)
    sharding = out["token_ids"].sharding
    report["dp_output_shard_shape"] = list(sharding.shard_shape(tuple(out["token_ids"].shape)))
    report["dp_batch_error"] = error_of(
        lambda: complete_many_parallel(c, many, batch_size=6, max_new_tokens=MAX_NEW,
                                       progress=False))
    report["timings"]["data_parallel"] = time.perf_counter() - t

    # No mesh given: the largest model axis that divides the model (8 heads over 8 devices).
    report["default_mesh"] = list(load_sharded(small).info["mesh_shape"])

    # Errors: a layout that does not divide the model, a mesh that does not match the devices.
    report["errors"] = {
        "heads_over_3": error_of(lambda: load_sharded(small, mesh_shape=(1, 3),
                                                      devices=devices[:3])),
        "mesh_16_on_8": error_of(lambda: load_sharded(small, mesh_shape=(1, 16))),
    }

    # Why our own layout: KerasHub's stock layout map on a one-key/value-head model.
    def stock():
        import keras_hub

        mesh = keras.distribution.DeviceMesh((1, 8), ("batch", "model"), devices=devices)
        layout = keras_hub.models.GemmaBackbone.get_layout_map(mesh)
        dist = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
        with dist.scope():
            keras_hub.models.GemmaCausalLM.from_preset(str(small))

    report["errors"]["stock_layout_one_kv_head"] = error_of(stock)
    report["timings"]["total"] = time.perf_counter() - t0
    Path(out_path).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
