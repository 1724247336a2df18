"""Scale-out with Keras 3's own distribution API (JAX): CodeGemma over several accelerators.

CodeGemma 7B is 17 GB in 16-bit: more than one T4 (about 15 GB usable) or one TPU v3 core
(16 GiB). Keras' distribution API splits it: a :class:`keras.distribution.DeviceMesh` with a
``"batch"`` and a ``"model"`` axis, a :class:`keras.distribution.LayoutMap` saying which weight
dimension goes over ``"model"``, and :class:`keras.distribution.ModelParallel`. Nothing here
shards by hand; this module picks the layout, checks it divides the model, loads under the
distribution and reports where the weights ended up.

* :func:`make_mesh` - a ``("batch", "model")`` mesh from the devices present.
* :func:`codegemma_layout_map` - a layout for both 2B (one key/value head, on which KerasHub's
  stock ``GemmaBackbone.get_layout_map`` fails) and 7B (16 heads). Query, output, feed-forward
  and embedding (vocabulary) kernels are split over ``"model"``; key/value kernels too when
  their head count divides, else (2B) replicated. Weights are replicated over ``"batch"``.
* :func:`load_sharded` (model-parallel) and :func:`load_data_parallel` (replicated, batch split)
  return a :class:`~cg_helpers.loading.LoadedModel` usable by ``Completer.from_loaded``.
* :func:`complete_many_parallel` - batched ``Completer.complete_many`` with a batch that divides.
* :func:`weight_placement` / :func:`format_placement` - sharding and shard shapes of variables.
* :func:`per_device_memory` / :func:`suggest_mesh` - bytes per device and a mesh that fits.

Errors: :class:`LayoutError` (a ``ValueError``) says which dimension does not divide and what
to pick instead. The distribution API needs the JAX backend here.

Example:
    >>> from cg_helpers.distributed import load_sharded, weight_placement, format_placement  # doctest: +SKIP
    >>> loaded = load_sharded("code_gemma_7b_en", mesh_shape=(1, 2), dtype="float16")  # doctest: +SKIP
    >>> print(format_placement(weight_placement(loaded.model)))                       # doctest: +SKIP
    >>> round(per_device_memory("code_gemma_7b_en", (1, 2), "float16").total_bytes / 1e9, 1)
    8.8
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .loading import DTYPE_BYTES, PRESETS, LoadedModel, load_model, resolve_preset

__all__ = [
    "BATCH", "MODEL", "LayoutError", "ModelDims", "DeviceMemory", "VariablePlacement",
    "model_dims", "check_layout", "check_batch", "make_mesh", "codegemma_layout_map",
    "load_sharded", "load_data_parallel", "distribute_inputs", "complete_many_parallel",
    "weight_placement", "format_placement", "per_device_memory", "suggest_mesh",
]

#: Mesh axis names: data is split over ``BATCH``, weights over ``MODEL``.
BATCH, MODEL = "batch", "model"

# Per-branch feed-forward width of the real presets (config intermediate_dim // 2).
_FFW_DIM = {2048: 16384, 3072: 24576}


class LayoutError(ValueError):
    """The mesh does not divide the model (heads, feed-forward width, vocabulary) or the batch."""


@dataclass(frozen=True)
class ModelDims:
    """The shapes that decide how a Gemma model can be split.

    ``ffw_dim`` is the width of each feed-forward kernel (KerasHub's ``intermediate_dim // 2``).

    Example:
        >>> model_dims("code_gemma_7b_en").params == PRESETS["code_gemma_7b_en"].params
        True
    """

    name: str
    vocabulary_size: int
    hidden_dim: int
    num_layers: int
    num_query_heads: int
    num_key_value_heads: int
    head_dim: int
    ffw_dim: int

    @property
    def params(self) -> int:
        """Parameter count (embedding, attention, feed-forward and norms)."""
        h, hd = self.hidden_dim, self.head_dim
        attn = (2 * self.num_query_heads + 2 * self.num_key_value_heads) * h * hd
        layer = attn + 3 * h * self.ffw_dim + 2 * h
        return self.vocabulary_size * h + self.num_layers * layer + h

    def split_dims(self) -> dict[str, int]:
        """The dimensions split over the ``"model"`` axis, by name."""
        return {"num_query_heads": self.num_query_heads, "feed-forward width (ffw_dim)": self.ffw_dim,
                "vocabulary_size": self.vocabulary_size}

    def valid_model_axes(self, n_devices: int | None = None) -> list[int]:
        """Model-axis sizes that divide every split dimension (and ``n_devices`` if given).

        Example:
            >>> model_dims("code_gemma_7b_en").valid_model_axes(8)
            [1, 2, 4, 8]
        """
        top = n_devices or self.num_query_heads
        return [m for m in range(1, top + 1)
                if all(d % m == 0 for d in self.split_dims().values())
                and (n_devices is None or n_devices % m == 0)]

    def kv_split(self, model_axis: int) -> bool:
        """True when key/value kernels are split too (their head count divides the axis)."""
        return self.num_key_value_heads % model_axis == 0


def _dims_from_config(name: str, cfg: dict[str, Any]) -> ModelDims:
    cfg = cfg.get("config", cfg)
    return ModelDims(name=name, vocabulary_size=int(cfg["vocabulary_size"]),
                     hidden_dim=int(cfg["hidden_dim"]), num_layers=int(cfg["num_layers"]),
                     num_query_heads=int(cfg["num_query_heads"]),
                     num_key_value_heads=int(cfg["num_key_value_heads"]),
                     head_dim=int(cfg["head_dim"]), ffw_dim=int(cfg["intermediate_dim"]) // 2)


def model_dims(source: Any) -> ModelDims:
    """Dimensions of a preset name, ``"practice"``, a local preset dir, or a loaded model.

    Known CodeGemma presets are answered offline from :data:`cg_helpers.loading.PRESETS`.

    Example:
        >>> d = model_dims("code_gemma_2b_en")
        >>> d.num_query_heads, d.num_key_value_heads, d.ffw_dim
        (8, 1, 16384)
    """
    if isinstance(source, ModelDims):
        return source
    if isinstance(source, LoadedModel):
        source = source.model
    if hasattr(source, "get_config") and not isinstance(source, (str, Path)):
        backbone = getattr(source, "backbone", source)
        return _dims_from_config(getattr(backbone, "name", "model"), backbone.get_config())
    if isinstance(source, str) and source in PRESETS:
        p = PRESETS[source]
        return ModelDims(name=p.name, vocabulary_size=p.vocabulary_size, hidden_dim=p.hidden_dim,
                         num_layers=p.num_layers, num_query_heads=p.num_query_heads,
                         num_key_value_heads=p.num_key_value_heads, head_dim=p.head_dim,
                         ffw_dim=_FFW_DIM[p.hidden_dim])
    target, is_local = resolve_preset(source)
    if is_local:
        cfg = json.loads((Path(target) / "config.json").read_text(encoding="utf-8"))
        return _dims_from_config(Path(target).name, cfg)
    from keras_hub.src.utils.preset_utils import load_json  # downloads config.json only

    return _dims_from_config(target, load_json(target, "config.json"))


def _mesh_choices(n: int) -> str:
    return ", ".join(str((n // m, m)) for m in range(1, n + 1) if n % m == 0)


def check_layout(dims: ModelDims | Any, mesh_shape: Sequence[int]) -> None:
    """Raise :class:`LayoutError` unless a ``(batch, model)`` mesh divides the model.

    Example:
        >>> check_layout(model_dims("code_gemma_7b_en"), (1, 3))
        Traceback (most recent call last):
        ...
        cg_helpers.distributed.LayoutError: code_gemma_7b_en cannot be split over a 'model' axis of 3: num_query_heads=16 is not divisible by 3; vocabulary_size=256000 is not divisible by 3. Pick a model axis that divides num_query_heads=16, feed-forward width (ffw_dim)=24576 and vocabulary_size=256000: 1, 2, 4, 8, 16. With 3 devices: mesh (3, 1).
    """
    dims = model_dims(dims)
    shape = _shape2(mesh_shape)
    m = shape[1]
    bad = [(k, v) for k, v in dims.split_dims().items() if v % m]
    if bad:
        n = shape[0] * m
        named = [f"{k}={v}" for k, v in dims.split_dims().items()]
        all_dims = ", ".join(named[:-1]) + " and " + named[-1]
        ok = dims.valid_model_axes()
        ok_here = [(n // a, a) for a in dims.valid_model_axes(n)]
        raise LayoutError(
            f"{dims.name} cannot be split over a 'model' axis of {m}: "
            + "; ".join(f"{k}={v} is not divisible by {m}" for k, v in bad)
            + f". Pick a model axis that divides {all_dims}: {', '.join(map(str, ok))}. "
            f"With {n} devices: mesh {' or '.join(map(str, ok_here))}.")


def check_batch(batch_size: int, mesh_shape: Sequence[int]) -> None:
    """Raise :class:`LayoutError` unless ``batch_size`` splits evenly over the ``"batch"`` axis.

    Example:
        >>> check_batch(6, (4, 2))
        Traceback (most recent call last):
        ...
        cg_helpers.distributed.LayoutError: batch_size=6 does not split over the 'batch' axis of 4 devices (mesh (4, 2)): each device must get the same number of prompts. Use batch_size=4 or 8 (a multiple of 4).
    """
    b = _shape2(mesh_shape)[0]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size % b:
        lo, hi = (batch_size // b) * b, (batch_size // b + 1) * b
        pick = f"{lo} or {hi}" if lo else f"{hi}"
        raise LayoutError(
            f"batch_size={batch_size} does not split over the 'batch' axis of {b} devices "
            f"(mesh {tuple(mesh_shape)}): each device must get the same number of prompts. "
            f"Use batch_size={pick} (a multiple of {b}).")


def _shape2(mesh_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(int(s) for s in mesh_shape)
    if len(shape) == 1:      # a data-parallel mesh: (n,) is (n, 1)
        shape = (shape[0], 1)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"mesh_shape must be (batch, model) with positive sizes, got {mesh_shape!r}")
    return shape


def _require_jax() -> None:
    import keras

    if keras.config.backend() != "jax":
        raise RuntimeError(
            f"Sharding with the Keras distribution API needs the JAX backend; keras runs on "
            f"{keras.config.backend()!r}. Restart, then call cg_helpers.backend.use_backend('jax') "
            "before importing keras.")


def make_mesh(shape: Sequence[int] | None = None, *, devices: Sequence[Any] | None = None) -> Any:
    """A ``("batch", "model")`` :class:`keras.distribution.DeviceMesh` over the devices present.

    ``shape=None`` gives ``(1, n)`` (every device on the model axis); one entry may be ``-1``.

    Example:
        >>> mesh = make_mesh((2, -1))            # doctest: +SKIP
        >>> mesh.shape                            # with 8 devices   # doctest: +SKIP
        (2, 4)
    """
    import keras

    _require_jax()
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    n = len(devices)
    if shape is None:
        shape = (1, n)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f"mesh shape must be (batch, model), got {shape!r}")
    if shape.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {shape!r}")
    if -1 in shape:
        other = shape[1 - shape.index(-1)]
        if other < 1 or n % other:
            raise LayoutError(f"{n} devices cannot be split into axes of {other}: choose one of "
                              f"{_mesh_choices(n)}.")
        shape = tuple(n // other if s == -1 else s for s in shape)
    if math.prod(shape) != n:
        kinds = ", ".join(str(d) for d in devices[:4]) + (", ..." if n > 4 else "")
        raise LayoutError(f"mesh {shape} needs {math.prod(shape)} devices but {n} are present "
                          f"({kinds}). With {n} devices use one of: {_mesh_choices(n)}.")
    return keras.distribution.DeviceMesh(shape, axis_names=(BATCH, MODEL), devices=devices)


def codegemma_layout_map(mesh: Any, dims: ModelDims | Any | None = None) -> Any:
    """A :class:`keras.distribution.LayoutMap` for a Gemma/CodeGemma backbone on ``mesh``.

    Split over ``"model"``: embedding rows (vocabulary), query and attention-output kernels
    (heads), feed-forward kernels (width), key/value kernels when their head count divides the
    axis (7B), else replicated (2B has one key/value head). Everything is replicated over
    ``"batch"``. With ``dims`` the layout is checked first (:func:`check_layout`).

    Example:
        >>> layout = codegemma_layout_map(make_mesh((1, 8)), model_dims("code_gemma_2b_en"))  # doctest: +SKIP
    """
    import keras

    model_axis = mesh.shape[list(mesh.axis_names).index(MODEL)]
    if dims is not None:
        dims = model_dims(dims)
        check_layout(dims, (math.prod(mesh.shape) // model_axis, model_axis))
    kv_split = dims is None or dims.kv_split(model_axis)
    layout = keras.distribution.LayoutMap(mesh)
    layout["token_embedding/embeddings"] = (MODEL, None)
    layout[r"decoder_block_\d+/attention/query/kernel"] = (MODEL, None, None)
    layout[r"decoder_block_\d+/attention/(key|value)/kernel"] = (
        (MODEL, None, None) if kv_split else (None, None, None))
    layout[r"decoder_block_\d+/attention/attention_output/kernel"] = (MODEL, None, None)
    layout[r"decoder_block_\d+/ffw_gating(_2)?/kernel"] = (None, MODEL)
    layout[r"decoder_block_\d+/ffw_linear/kernel"] = (MODEL, None)
    return layout


def distribute_inputs(lm: Any, distribution: Any) -> None:
    """Make ``lm``'s generate function split each batch over ``distribution``'s batch axis.

    ``Completer`` calls ``lm.make_generate_function()`` with NumPy arrays; this wraps that
    function (it survives ``lm.compile``) so inputs are placed with the distribution's data
    layout, and batches are padded up to a multiple of the batch axis (outputs are cut back).

    Example:
        >>> distribute_inputs(lm, keras.distribution.DataParallel())   # doctest: +SKIP
    """
    import numpy as np
    import keras

    replicas = int(distribution.device_mesh.shape[
        list(distribution.device_mesh.axis_names).index(distribution.batch_dim_name)])
    original = type(lm).make_generate_function

    def make_generate_function() -> Any:
        fn = original(lm)

        def generate(inputs: dict[str, Any], stop_token_ids: Any = None) -> Any:
            rows = int(np.shape(inputs["token_ids"])[0])
            pad = (-rows) % replicas
            placed = {}
            for key, value in inputs.items():
                value = np.asarray(value)
                if pad:
                    value = np.concatenate([value, np.repeat(value[-1:], pad, axis=0)])
                layout = distribution.get_data_layout(value.shape)
                placed[key] = keras.distribution.distribute_tensor(value, layout)
            out = fn(placed, stop_token_ids=stop_token_ids)
            return {k: v[:rows] for k, v in out.items()} if pad else out

        return generate

    lm.make_generate_function = make_generate_function
    lm._cg_distribution = distribution


def _load(preset: Any, distribution: Any, dtype: str | None, info: dict[str, Any],
          **kwargs: Any) -> LoadedModel:
    with distribution.scope():
        loaded = load_model(preset, dtype=dtype, **kwargs)
    distribute_inputs(loaded.model, distribution)
    loaded.info = {**loaded.info, **info}
    return loaded


def load_sharded(preset: Any = "code_gemma_7b_en", *, mesh_shape: Sequence[int] | None = None,
                 dtype: str | None = None, devices: Sequence[Any] | None = None,
                 **kwargs: Any) -> LoadedModel:
    """Load a preset model-parallel: weights split over the mesh's ``"model"`` axis.

    ``mesh_shape`` is ``(batch, model)``; default: :func:`suggest_mesh` for the devices present
    (the largest model axis that divides the model, e.g. ``(1, 8)`` for 7B on 8 devices). The
    layout is checked against the preset's dimensions *before* anything is loaded. Wrap the result with
    ``Completer.from_loaded``. Needs the JAX backend.

    Example:
        >>> loaded = load_sharded("code_gemma_7b_en", mesh_shape=(1, 2), dtype="float16")  # doctest: +SKIP
        >>> Completer.from_loaded(loaded).complete("def add(a, b):\\n    return ", "\\n")    # doctest: +SKIP
    """
    import keras

    _require_jax()
    dims = model_dims(preset)
    if mesh_shape is None:
        n = len(devices) if devices is not None else len(keras.distribution.list_devices())
        mesh_shape = suggest_mesh(dims, n)
    mesh = make_mesh(mesh_shape, devices=devices)
    layout = codegemma_layout_map(mesh, dims)
    distribution = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name=BATCH)
    return _load(preset, distribution, dtype,
                 {"distribution": "model_parallel", "mesh_shape": tuple(mesh.shape)}, **kwargs)


def load_data_parallel(preset: Any = "code_gemma_2b_en", *, dtype: str | None = None,
                       devices: Sequence[Any] | None = None, **kwargs: Any) -> LoadedModel:
    """Load a preset replicated on every device, each batch split across them (data-parallel).

    For many completions with a model that fits one device (2B); use it with
    :func:`complete_many_parallel`.

    Example:
        >>> loaded = load_data_parallel("code_gemma_2b_en", dtype="float16")   # doctest: +SKIP
    """
    import keras

    _require_jax()
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    return _load(preset, distribution, dtype,
                 {"distribution": "data_parallel", "mesh_shape": (len(devices), 1)}, **kwargs)


def complete_many_parallel(completer: Any, requests: Sequence[Any], *,
                           batch_size: int | None = None, **kwargs: Any) -> list[Any]:
    """``completer.complete_many`` with a batch that splits evenly over the batch axis.

    ``batch_size`` defaults to the number of data-parallel replicas; one that does not divide
    raises :class:`LayoutError` saying what to use instead.

    Example:
        >>> c = Completer.from_loaded(load_data_parallel("code_gemma_2b_en"))   # doctest: +SKIP
        >>> results = complete_many_parallel(c, [("import ", "\\n")] * 16)        # doctest: +SKIP
    """
    distribution = getattr(completer.lm, "_cg_distribution", None)
    if distribution is None:
        raise ValueError("This model was not loaded with load_sharded/load_data_parallel; "
                         "use completer.complete_many(...) or load it distributed first.")
    mesh = distribution.device_mesh
    replicas = int(mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)])
    batch_size = replicas if batch_size is None else batch_size
    check_batch(batch_size, (replicas, math.prod(mesh.shape) // replicas))
    return completer.complete_many(requests, batch_size=batch_size, **kwargs)


@dataclass(frozen=True)
class VariablePlacement:
    """Where one variable lives: its sharding spec and the shape of each device's piece."""

    path: str
    shape: tuple[int, ...]
    spec: str
    shard_shape: tuple[int, ...]
    num_devices: int
    distinct_shards: int
    bytes_per_device: int

    @property
    def is_split(self) -> bool:
        return self.shard_shape != self.shape


_DEFAULT_PATTERNS = (r"token_embedding/embeddings", r"decoder_block_0/attention/query/kernel",
                     r"decoder_block_0/attention/key/kernel",
                     r"decoder_block_0/attention/attention_output/kernel",
                     r"decoder_block_0/ffw_gating/kernel", r"decoder_block_0/ffw_linear/kernel",
                     r"decoder_block_0/pre_attention_norm/scale")


def weight_placement(model: Any, patterns: Sequence[str] | None = None) -> list[VariablePlacement]:
    """Sharding and per-device shard shape of the variables whose path matches ``patterns``
    (regular expressions, ``re.search``; default: the embedding and block 0's kernels).

    Example:
        >>> for p in weight_placement(loaded.model): print(p.path, p.shape, p.shard_shape)  # doctest: +SKIP
    """
    import numpy as np

    if isinstance(model, LoadedModel):
        model = model.model
    backbone = getattr(model, "backbone", model)
    pats = [re.compile(p) for p in (patterns or _DEFAULT_PATTERNS)]
    rows = []
    for v in backbone.weights:
        if not any(p.search(v.path) for p in pats):
            continue
        value = v.value
        shape = tuple(int(s) for s in v.shape)
        sharding = getattr(value, "sharding", None)
        itemsize = np.dtype(str(value.dtype)).itemsize
        if sharding is None or not hasattr(sharding, "shard_shape"):
            rows.append(VariablePlacement(v.path, shape, "unsharded (one device)", shape, 1, 1,
                                          math.prod(shape) * itemsize))
            continue
        shard = tuple(int(s) for s in sharding.shard_shape(shape))
        spec = str(getattr(sharding, "spec", sharding))
        indices = {str(s.index) for s in value.addressable_shards}
        rows.append(VariablePlacement(v.path, shape, spec, shard, len(sharding.device_set),
                                      len(indices), math.prod(shard) * itemsize))
    return rows


def format_placement(rows: Sequence[VariablePlacement]) -> str:
    """A table of :func:`weight_placement` rows.

    Example:
        >>> print(format_placement(weight_placement(loaded.model)))   # doctest: +SKIP
    """
    head = f"{'variable':<52} {'shape':<18} {'sharding':<34} {'per device':<16} {'devices':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.path:<52} {str(r.shape):<18} {r.spec:<34} {str(r.shard_shape):<16} "
                     f"{r.num_devices:>7}")
    return "\n".join(lines)


@dataclass(frozen=True)
class DeviceMemory:
    """Estimated bytes on each device for one mesh (see :func:`per_device_memory`)."""

    preset: str
    mesh_shape: tuple[int, int]
    dtype: str
    weight_bytes: int
    kv_cache_bytes: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_bytes(self) -> int:
        """Weights + KV cache per device (no runtime headroom: see :func:`suggest_mesh`)."""
        return self.weight_bytes + self.kv_cache_bytes

    def __str__(self) -> str:
        gb = 1e9
        note = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return (f"{self.preset} {self.dtype} on mesh {self.mesh_shape}: "
                f"{self.total_bytes / gb:.2f} GB per device (weights {self.weight_bytes / gb:.2f}"
                f" + KV cache {self.kv_cache_bytes / gb:.2f}){note}")


def per_device_memory(preset: Any, mesh_shape: Sequence[int], dtype: str = "bfloat16", *,
                      batch_size: int = 1, tokens: int = 1024) -> DeviceMemory:
    """Bytes per device under :func:`codegemma_layout_map` on a ``(batch, model)`` mesh.

    Layout-exact, unlike the device-count split of :func:`cg_helpers.memory.memory_plan`:
    weights split over the model axis only (replicated over the batch axis), with the
    replicated parts whole (norms; 2B's single key/value head). KV cache: ``batch_size``
    sequences of ``tokens`` spread over the batch axis, and over the model axis when the
    key/value heads split. The runtime and activations come on top (the memory plan's
    headroom: 1 GB + 10 %).

    Example:
        >>> m = per_device_memory("code_gemma_7b_en", (1, 8), "bfloat16")
        >>> round(m.weight_bytes / 1e9, 2)
        2.13
        >>> round(per_device_memory("code_gemma_7b_en", (2, 4), "bfloat16").weight_bytes / 1e9, 2)
        4.27
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.")
    dims = model_dims(preset)
    b, m = _shape2(mesh_shape)
    check_layout(dims, (b, m))
    w = DTYPE_BYTES[dtype]
    act = 4 if dtype == "float32" else 2     # the cache is in the compute dtype
    h, hd = dims.hidden_dim, dims.head_dim
    kv_div = m if dims.kv_split(m) else 1
    per_layer = (2 * dims.num_query_heads * h * hd / m            # query + attention output
                 + 2 * dims.num_key_value_heads * h * hd / kv_div  # key + value
                 + 3 * h * dims.ffw_dim / m + 2 * h)               # feed-forward + norms
    weights = (dims.vocabulary_size * h / m + dims.num_layers * per_layer + h) * w
    seqs = max(1, math.ceil(batch_size / b))
    kv = 2 * dims.num_layers * dims.num_key_value_heads * hd * act * tokens * seqs / kv_div
    notes = []
    if not dims.kv_split(m):
        notes.append(f"key/value kernels and cache replicated: {dims.num_key_value_heads} "
                     f"head(s) do not split over {m}")
    if b > 1:
        notes.append(f"weights replicated over the batch axis ({b} copies)")
    return DeviceMemory(preset=dims.name, mesh_shape=(b, m), dtype=dtype, weight_bytes=int(weights),
                        kv_cache_bytes=int(kv), notes=tuple(notes))


def suggest_mesh(preset: Any, n_devices: int, *, device: Any = None, dtype: str = "bfloat16",
                 batch_size: int = 1, tokens: int = 1024) -> tuple[int, int]:
    """A ``(batch, model)`` mesh for ``n_devices``.

    Without ``device``: the largest model axis that divides the model (lowest latency per
    request). With ``device`` (a name such as ``"T4"`` or ``"TPU v3-8"``, or bytes per device,
    read by :func:`cg_helpers.memory.resolve_device`): the smallest model axis whose
    per-device need plus the memory plan's headroom fits, the rest going to the batch axis
    (most throughput). :class:`LayoutError` if nothing fits.

    Example:
        >>> suggest_mesh("code_gemma_7b_en", 2, device="T4", dtype="float16")
        (1, 2)
        >>> suggest_mesh("code_gemma_7b_en", 8, device="TPU v3-8", batch_size=8)
        (4, 2)
        >>> suggest_mesh("code_gemma_7b_en", 8)
        (1, 8)
    """
    dims = model_dims(preset)
    axes = dims.valid_model_axes(n_devices)
    if device is None:
        return (n_devices // axes[-1], axes[-1])
    from .memory import HEADROOM_FRACTION, RUNTIME_OVERHEAD_BYTES, resolve_device

    spec = resolve_device(device)
    need = {}
    for m in axes:
        b = n_devices // m
        mem = per_device_memory(dims, (b, m), dtype, batch_size=max(batch_size, b), tokens=tokens)
        need[m] = mem.total_bytes * (1 + HEADROOM_FRACTION) + RUNTIME_OVERHEAD_BYTES
        if need[m] <= spec.memory_bytes:
            return (b, m)
    raise LayoutError(
        f"{dims.name} in {dtype} does not fit {n_devices} x {spec.name} "
        f"({spec.memory_bytes / 1e9:.1f} GB usable each): split {axes[-1]} ways it needs "
        f"{need[axes[-1]] / 1e9:.1f} GB per device. Use int8/int4 weights "
        "(cg_helpers.quantization), fewer tokens, or more devices.")
