"""Precision and memory: pick the dtype for the device, and check a preset fits *before* downloading.

* :func:`choose_dtype` - float16 on a T4/V100/P100 (no native bfloat16), bfloat16 on Ampere or
  newer GPUs and on TPUs, float32 on CPU; an override wins.
* :func:`memory_plan` - weights + KV cache for the requested length + headroom, against the
  device's usable memory; a verdict, and for a non-fit the ways out (int8/int4 quantization and
  its host-RAM cost, a larger runtime, sharding over 2 GPUs, the smaller preset).
* :func:`plot_memory_plan` - the same as a small stacked-bar chart for the notebook.

Sizes come from :data:`cg_helpers.loading.PRESETS` (parameter counts from the preset metadata).
The headroom is a rule of thumb (1 GB for the CUDA/XLA runtime plus 10 % of weights and cache
for activations and fragmentation): measure on your device before relying on a tight fit.
Nothing here imports keras.

Example:
    >>> plan = memory_plan("code_gemma_7b_en", "bfloat16", "T4", max_length=1024)
    >>> plan.fits
    False
    >>> [o.label for o in plan.options if o.fits][:2]
    ['int8 quantization', 'int4 quantization']
    >>> memory_plan("code_gemma_2b_en", "float16", "T4").fits
    True
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal, Sequence

from .loading import DTYPE_BYTES, PRESETS, PresetInfo

__all__ = [
    "GB", "DeviceSpec", "KNOWN_DEVICES", "HOST_RAM", "DtypeChoice", "resolve_device",
    "choose_dtype", "MemoryOption", "MemoryPlan", "memory_plan", "plot_memory_plan",
]

GB = 1e9
#: Fixed headroom for the CUDA context / XLA runtime, per device.
RUNTIME_OVERHEAD_BYTES = int(1.0 * GB)
#: Extra headroom as a share of weights + KV cache (activations, fragmentation).
HEADROOM_FRACTION = 0.10


@dataclass(frozen=True)
class DeviceSpec:
    """An accelerator type: usable memory *per device*, how many, and native bfloat16 support."""

    name: str
    memory_bytes: int
    count: int = 1
    kind: Literal["gpu", "tpu", "cpu"] = "gpu"
    bf16: bool = False
    arch: str = ""

    def __str__(self) -> str:
        many = f"{self.count} x " if self.count > 1 else ""
        return f"{many}{self.name} ({self.memory_bytes / GB:.1f} GB usable each)" if many \
            else f"{self.name} ({self.memory_bytes / GB:.1f} GB usable)"


def _d(name, gb, count=1, kind="gpu", bf16=False, arch=""):
    return DeviceSpec(name, int(gb * GB), count, kind, bf16, arch)


#: Devices learners meet on Colab, Kaggle and clouds; memory is what a model can use, per device.
KNOWN_DEVICES: dict[str, DeviceSpec] = {d.name: d for d in [
    _d("T4", 15.0, arch="Turing"),                    # 16 GB card, ~15 GB usable
    _d("P100", 16.0, arch="Pascal"),
    _d("V100", 16.0, arch="Volta"),
    _d("L4", 22.5, bf16=True, arch="Ada Lovelace"),
    _d("A10G", 22.5, bf16=True, arch="Ampere"),
    _d("A100-40GB", 40.0, bf16=True, arch="Ampere"),
    _d("A100-80GB", 80.0, bf16=True, arch="Ampere"),
    _d("H100", 80.0, bf16=True, arch="Hopper"),
    _d("TPU v2-8", 8.0, 8, "tpu", True, "TPU v2"),     # per core
    _d("TPU v3-8", 16.0, 8, "tpu", True, "TPU v3"),    # 16 GB per core x 8 cores
    _d("TPU v5e-1", 16.0, 1, "tpu", True, "TPU v5e"),
    _d("TPU v5e-8", 16.0, 8, "tpu", True, "TPU v5e"),
    _d("TPU v6e-1", 32.0, 1, "tpu", True, "TPU v6e"),
]}

#: Host RAM of common runtimes: quantizing after loading needs the float model there first.
HOST_RAM: dict[str, int] = {"free Colab": int(12.7 * GB), "Kaggle notebook": int(29 * GB)}

_GPU_PATTERNS = [  # (regex on the upper-cased device name, known device)
    (r"\bT4\b", "T4"), (r"P100", "P100"), (r"V100", "V100"), (r"\bL4\b", "L4"),
    (r"A10G", "A10G"), (r"A100.*80\s*GB", "A100-80GB"), (r"A100", "A100-40GB"), (r"H100", "H100"),
]


def _match_known(name: str) -> DeviceSpec | None:
    key = name.strip()
    for known in KNOWN_DEVICES:
        if key.lower() == known.lower():
            return KNOWN_DEVICES[known]
    upper = key.upper().replace("LITEPOD", "E")       # v5litepod-8 is the cloud name of v5e-8
    m = re.search(r"V(\d)([A-Z]?)[-_ ]?(\d+)", upper)
    if "TPU" in upper or (m and upper.startswith("V")):
        if m:
            candidate = f"TPU v{m.group(1)}{m.group(2).lower()}-{m.group(3)}"
            if candidate in KNOWN_DEVICES:
                return KNOWN_DEVICES[candidate]
        return None
    for pattern, known in _GPU_PATTERNS:
        if re.search(pattern, upper):
            return KNOWN_DEVICES[known]
    return None


def resolve_device(device: Any = None) -> DeviceSpec:
    """A :class:`DeviceSpec` from a name (``"T4"``, ``"Tesla T4"``, ``"v3-8"``, ``"cpu"``), a
    number of bytes, a :class:`cg_helpers.runtime.DeviceInfo`, or ``None`` (this machine).

    Example:
        >>> resolve_device("Tesla T4").name
        'T4'
        >>> resolve_device(24e9).memory_bytes
        24000000000
    """
    if isinstance(device, DeviceSpec):
        return device
    if device is None:
        from .runtime import detect_devices, host_memory_bytes

        found = detect_devices()
        if not found:
            return DeviceSpec("CPU", host_memory_bytes() or int(8 * GB), 1, "cpu", False, "CPU")
        spec = resolve_device(found[0])
        return replace(spec, count=max(spec.count, len(found))) if found[0].kind == "gpu" else spec
    if isinstance(device, bool):
        raise TypeError("device must be a name, a number of bytes or a DeviceSpec, not a bool")
    if isinstance(device, (int, float)):
        if device <= 0:
            raise ValueError(f"device memory must be positive, got {device}")
        return DeviceSpec(f"{device / GB:.1f} GB device", int(device), 1, "gpu", False)
    if isinstance(device, str):
        if device.strip().lower() in ("cpu", "none"):
            from .runtime import host_memory_bytes

            return DeviceSpec("CPU", host_memory_bytes() or int(8 * GB), 1, "cpu", False, "CPU")
        spec = _match_known(device)
        if spec is None:
            raise ValueError(f"Unknown device {device!r}. Known: {', '.join(KNOWN_DEVICES)}, cpu; "
                             "or pass the usable memory in bytes, e.g. memory_plan(..., 24e9).")
        return spec
    # cg_helpers.runtime.DeviceInfo (duck-typed to avoid a hard dependency)
    name = getattr(device, "name", None)
    kind = getattr(device, "kind", "gpu")
    if name is None:
        raise TypeError(f"Cannot read a device from {type(device).__name__}")
    spec = _match_known(name)
    if spec is not None:
        return spec
    cc = getattr(device, "compute_capability", None)
    total = getattr(device, "memory_bytes", None) or int(16 * GB)
    bf16 = kind == "tpu" or (cc is not None and float(cc) >= 8.0)
    return DeviceSpec(name, max(int(total - GB), int(total * 0.5)), 1, kind, bf16,
                      f"compute capability {cc}" if cc else "")


class DtypeChoice(str):
    """A dtype name (use it as a string) with ``.reason`` and ``.device`` attached."""

    reason: str
    device: DeviceSpec | None

    def __new__(cls, dtype: str, reason: str, device: DeviceSpec | None = None) -> "DtypeChoice":
        obj = super().__new__(cls, dtype)
        obj.reason = reason
        obj.device = device
        return obj


_FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def choose_dtype(device_info: Any = None, override: str | None = None) -> DtypeChoice:
    """The weight dtype for a device: float16 without native bfloat16 (T4, V100, P100),
    bfloat16 on Ampere and newer and on TPUs, float32 on CPU. ``override`` wins.

    ``device_info`` is anything :func:`resolve_device` takes; ``None`` looks at this machine.
    The result is a ``str`` (pass it to ``load_model(..., dtype=...)``) with a ``.reason``.

    Example:
        >>> choose_dtype("T4"), choose_dtype("A100-40GB"), choose_dtype("v3-8"), choose_dtype("cpu")
        ('float16', 'bfloat16', 'bfloat16', 'float32')
        >>> choose_dtype("T4").reason
        'T4 (Turing) has no native bfloat16: float16 keeps 16-bit speed and memory.'
    """
    device = None
    if override is None or device_info is not None:
        device = resolve_device(device_info)
    if override is not None:
        if override not in _FLOAT_DTYPES:
            raise ValueError(f"override must be one of {', '.join(_FLOAT_DTYPES)}, got {override!r}. "
                             "For int8/int4 load a float dtype, then use cg_helpers.quantization.")
        reason = "chosen by override"
        if device is not None and override == "bfloat16" and device.kind == "gpu" and not device.bf16:
            reason += (f"; warning: {device.name} has no native bfloat16, it will be slow "
                       "(emulated) - float16 is the better 16-bit choice there")
        return DtypeChoice(override, reason, device)
    assert device is not None
    if device.kind == "cpu":
        return DtypeChoice("float32", "CPU: float32 is the fast, exact path on CPUs.", device)
    if device.kind == "tpu":
        return DtypeChoice("bfloat16", f"{device.name}: TPUs compute natively in bfloat16.", device)
    if device.bf16:
        arch = f" ({device.arch})" if device.arch else ""
        return DtypeChoice("bfloat16", f"{device.name}{arch} supports bfloat16 natively: same "
                           "range as float32 at half the memory.", device)
    arch = f" ({device.arch})" if device.arch else ""
    return DtypeChoice("float16", f"{device.name}{arch} has no native bfloat16: float16 keeps "
                       "16-bit speed and memory.", device)


@dataclass
class MemoryOption:
    """One way out of a non-fit, with its own plan."""

    label: str
    fits: bool
    plan: "MemoryPlan | None"
    note: str = ""

    def __str__(self) -> str:
        size = f"{self.plan.total_bytes / GB:.1f} GB per device" if self.plan else ""
        verdict = "fits" if self.fits else "does not fit"
        return f"{self.label}: {size} -> {verdict}. {self.note}".strip()


@dataclass
class MemoryPlan:
    """Per-device memory need of a preset in a dtype for a length and batch, and the verdict."""

    preset: str
    dtype: str
    device: DeviceSpec
    max_length: int
    batch_size: int
    num_devices: int
    weights_bytes: int
    kv_cache_bytes: int
    headroom_bytes: int
    options: list[MemoryOption] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Weights + KV cache + headroom, per device."""
        return self.weights_bytes + self.kv_cache_bytes + self.headroom_bytes

    @property
    def available_bytes(self) -> int:
        return self.device.memory_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.available_bytes

    @property
    def margin_bytes(self) -> int:
        """Spare bytes per device (negative: missing)."""
        return self.available_bytes - self.total_bytes

    @property
    def label(self) -> str:
        short = self.preset.replace("code_gemma_", "").replace("_en", "")
        shard = f" /{self.num_devices}" if self.num_devices > 1 else ""
        return f"{short}\n{self.dtype}{shard}"

    def rows(self) -> list[tuple[str, str]]:
        per = " per device" if self.num_devices > 1 else ""
        verdict = (f"FITS ({self.margin_bytes / GB:.1f} GB spare)" if self.fits else
                   f"DOES NOT FIT (short by {-self.margin_bytes / GB:.1f} GB)")
        return [
            ("weights" + per, f"{self.weights_bytes / GB:.2f} GB"),
            ("KV cache" + per, f"{self.kv_cache_bytes / GB:.2f} GB ({self.max_length} tokens x "
                               f"batch {self.batch_size})"),
            ("headroom", f"{self.headroom_bytes / GB:.2f} GB"),
            ("total" + per, f"{self.total_bytes / GB:.2f} GB"),
            ("available" + per, f"{self.available_bytes / GB:.2f} GB"),
            ("verdict", verdict),
        ]

    @property
    def title(self) -> str:
        if self.num_devices > 1 and self.device.count == self.num_devices and self.device.kind == "tpu":
            where = f"{self.device.name} ({self.num_devices} cores)"   # "TPU v3-8 (8 cores)"
        elif self.num_devices > 1:
            where = f"{self.num_devices} x {self.device.name}"
        else:
            where = self.device.name
        return f"{self.preset} in {self.dtype} on {where}"

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"Memory plan: {self.title}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
        if self.options:
            lines.append("Ways out:")
            lines += [f"  - {o}" for o in self.options]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self.rows())
        out = f"<b>Memory plan: {html.escape(self.title)}</b><table>{body}</table>"
        if self.options:
            items = "".join(f"<li>{html.escape(str(o))}</li>" for o in self.options)
            out += f"<b>Ways out</b><ul>{items}</ul>"
        return out


def _preset_info(preset: str | PresetInfo) -> PresetInfo:
    if isinstance(preset, PresetInfo):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; the memory plan knows {', '.join(PRESETS)}.")
    return PRESETS[preset]


def _compute(info: PresetInfo, dtype: str, device: DeviceSpec, max_length: int, batch_size: int,
             num_devices: int) -> MemoryPlan:
    weights = info.weight_bytes(dtype)
    kv = info.kv_cache_bytes_per_token(dtype) * max_length * batch_size
    if num_devices > 1:
        weights = -(-weights // num_devices)
        # KV heads are split over devices when they divide evenly, else replicated (2B has 1 head).
        if info.num_key_value_heads % num_devices == 0:
            kv = -(-kv // num_devices)
    headroom = RUNTIME_OVERHEAD_BYTES + int(HEADROOM_FRACTION * (weights + kv))
    return MemoryPlan(info.name, dtype, device, max_length, batch_size, num_devices,
                      weights, kv, headroom)


def memory_plan(
    preset: str | PresetInfo,
    dtype: str | None = None,
    device: Any = None,
    max_length: int = 1024,
    batch_size: int = 1,
    *,
    num_devices: int = 1,
    host_memory_bytes: int | None = None,
) -> MemoryPlan:
    """Will ``preset`` in ``dtype`` fit ``device`` for ``max_length`` tokens x ``batch_size``?

    Args:
        preset: a CodeGemma preset name (see :data:`cg_helpers.loading.PRESETS`).
        dtype: ``float32``/``float16``/``bfloat16``, or ``int8``/``int4`` for quantized weights;
            ``None`` uses :func:`choose_dtype` for the device.
        device: a known device name (``"T4"``, ``"A100-40GB"``, ``"v3-8"``...), usable memory in
            bytes, or ``None`` for this machine.
        max_length: prompt + generated tokens (KV cache length).
        num_devices: shard the weights over this many devices (per-device numbers).
        host_memory_bytes: host RAM, for the quantization option's note (default: this
            machine's when ``device`` is ``None``, else free Colab's 12.7 GB).

    Example:
        >>> p = memory_plan("code_gemma_7b_en", "int8", "T4")
        >>> p.fits, round(p.weights_bytes / 1e9, 2)
        (True, 8.54)
    """
    info = _preset_info(preset)
    spec = resolve_device(device)
    if device is None and host_memory_bytes is None:
        from .runtime import host_memory_bytes as _host_ram

        host_memory_bytes = _host_ram()
    if dtype is None:
        dtype = str(choose_dtype(spec))
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.")
    for name, value in (("max_length", max_length), ("batch_size", batch_size),
                        ("num_devices", num_devices)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if num_devices > max(spec.count, 1) and spec.count > 1:
        raise ValueError(f"{spec.name} has {spec.count} devices, cannot shard over {num_devices}.")
    plan = _compute(info, dtype, spec, max_length, batch_size, num_devices)
    if not plan.fits:
        plan.options = _ways_out(info, dtype, spec, max_length, batch_size, num_devices,
                                 host_memory_bytes)
    return plan


def _ways_out(info: PresetInfo, dtype: str, spec: DeviceSpec, max_length: int, batch_size: int,
              num_devices: int, host_ram: int | None) -> list[MemoryOption]:
    options: list[MemoryOption] = []
    float_dtype = dtype if dtype in _FLOAT_DTYPES else ("float16" if not spec.bf16 else "bfloat16")
    host_need = info.weight_bytes(float_dtype)
    if spec.kind == "cpu":
        ram_name, ram = "this machine", spec.memory_bytes
    elif host_ram:
        ram_name, ram = "this machine", host_ram
    else:
        ram_name, ram = "free Colab", HOST_RAM["free Colab"]
    for mode in ("int8", "int4"):
        if DTYPE_BYTES[mode] >= DTYPE_BYTES[dtype]:
            continue
        p = _compute(info, mode, spec, max_length, batch_size, num_devices)
        ram_ok = host_need <= ram
        note = (f"Quantizing after loading needs the {float_dtype} model in host RAM first: "
                f"{host_need / GB:.1f} GB; {ram_name} has {ram / GB:.1f} GB"
                + (" - enough." if ram_ok else
                   " - not enough: use a high-RAM runtime (Kaggle has about 29 GB) or a preset "
                   "saved already quantized (quantize once elsewhere, save_to_preset, load that)."))
        options.append(MemoryOption(f"{mode} quantization", p.fits, p, note))
    bigger = [d for d in KNOWN_DEVICES.values()
              if d.kind == "gpu" and d.memory_bytes > spec.memory_bytes
              and _compute(info, dtype, d, max_length, batch_size, 1).fits]
    if bigger:
        best = min(bigger, key=lambda d: d.memory_bytes)
        p = _compute(info, dtype, best, max_length, batch_size, 1)
        others = ", ".join(d.name for d in sorted(bigger, key=lambda d: d.memory_bytes)[1:4])
        options.append(MemoryOption(
            f"a larger runtime ({best.name})", True, p,
            f"Also fits: {others}." if others else ""))
    shards = None
    if spec.kind == "gpu" and num_devices == 1:
        shards = 2
    elif spec.kind == "tpu" and spec.count > num_devices:
        shards = spec.count
    if shards:
        p = _compute(info, dtype, spec, max_length, batch_size, shards)
        if spec.name == "T4":
            where = "Kaggle's 'GPU T4 x2' accelerator has two"
        elif spec.kind == "tpu":
            where = f"{spec.name} has {spec.count} cores"
        else:
            where = f"needs a runtime with {shards} x {spec.name}"
        options.append(MemoryOption(f"sharding over {shards} x {spec.name}", p.fits, p,
                                    f"{where}; see cg_helpers.distributed (JAX model parallelism)."))
    smaller = [q for q in PRESETS.values() if q.kind == info.kind and q.params < info.params]
    if smaller:
        small = min(smaller, key=lambda q: q.params)
        p = _compute(small, dtype, spec, max_length, batch_size, num_devices)
        options.append(MemoryOption(f"the smaller preset {small.name}", p.fits, p))
    if max_length > 1024:
        p = _compute(info, dtype, spec, 1024, batch_size, num_devices)
        if p.fits:
            options.append(MemoryOption("a shorter max_length (1024)", True, p))
    return options


def _plans_from(items: Any, dtypes: Sequence[str] | None, device: Any, max_length: int,
                batch_size: int) -> list[MemoryPlan]:
    if isinstance(items, MemoryPlan):
        return [items]
    if isinstance(items, (str, PresetInfo)):
        items = [items]
    plans: list[MemoryPlan] = []
    for item in items:
        if isinstance(item, MemoryPlan):
            plans.append(item)
            continue
        for dtype in (dtypes or [None]):
            plans.append(memory_plan(item, dtype, device, max_length, batch_size))
    return plans


def plot_memory_plan(
    plans: MemoryPlan | str | Iterable[Any],
    dtypes: Sequence[str] | None = None,
    device: Any = None,
    max_length: int = 1024,
    batch_size: int = 1,
    *,
    ax: Any = None,
) -> Any:
    """Stacked bars (weights, KV cache, headroom) per preset/dtype against the device's memory.

    ``plans`` is a :class:`MemoryPlan`, a list of them, or preset names combined with
    ``dtypes`` on ``device``. Returns the matplotlib ``Figure`` (displayed by Jupyter); no
    global pyplot state is touched unless ``ax`` comes from pyplot.

    Example:
        >>> fig = plot_memory_plan(["code_gemma_2b_en", "code_gemma_7b_en"],
        ...                        dtypes=["float16", "int8"], device="T4")
        >>> len(fig.axes[0].patches)      # 4 bars x 3 parts
        12
    """
    from matplotlib.figure import Figure

    all_plans = _plans_from(plans, dtypes, device, max_length, batch_size)
    if not all_plans:
        raise ValueError("Nothing to plot: give at least one preset or MemoryPlan.")
    if ax is None:
        fig = Figure(figsize=(1.2 + 1.1 * len(all_plans), 3.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    xs = range(len(all_plans))
    parts = [("weights", "weights_bytes", "#4C72B0"), ("KV cache", "kv_cache_bytes", "#DD8452"),
             ("headroom", "headroom_bytes", "#BBBBBB")]
    bottom = [0.0] * len(all_plans)
    for label, attr, color in parts:
        values = [getattr(p, attr) / GB for p in all_plans]
        ax.bar(xs, values, bottom=bottom, color=color, label=label, width=0.6)
        bottom = [b + v for b, v in zip(bottom, values)]
    devices = {(p.device.name, p.available_bytes) for p in all_plans}
    for i, p in enumerate(all_plans):
        ax.text(i, bottom[i], "fits" if p.fits else "too big", ha="center", va="bottom",
                fontsize=8, color="green" if p.fits else "red")
    if len(devices) == 1:
        name, avail = devices.pop()
        ax.axhline(avail / GB, color="red", linestyle="--", linewidth=1,
                   label=f"{name}: {avail / GB:.0f} GB usable")
    else:
        ax.scatter(list(xs), [p.available_bytes / GB for p in all_plans], marker="_", s=600,
                   color="red", label="device memory", zorder=3)
    ax.set_xticks(list(xs), [p.label for p in all_plans], fontsize=8)
    ax.set_ylabel("GB per device")
    ax.set_title(f"Memory plan, max_length {all_plans[0].max_length}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, max(max(bottom), max(p.available_bytes / GB for p in all_plans)) * 1.15)
    return fig
