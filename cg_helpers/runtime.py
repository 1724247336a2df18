"""What is this runtime? Platform, accelerator, backend, versions, and what to do about it.

:func:`runtime_report` answers in one call, before or after keras is imported. It never imports
keras, jax, tensorflow or torch just to look: it asks ``nvidia-smi`` and the environment, and
asks a framework only if that framework is already imported (or ``probe_frameworks=True``).

Example:
    >>> from cg_helpers.runtime import runtime_report
    >>> report = runtime_report()
    >>> report.platform in ("colab", "kaggle", "local")
    True
    >>> print(report)                                     # doctest: +SKIP
    Platform     local
    Accelerator  none (CPU only, 2 cores, 23.4 GB RAM)
    ...
"""

from __future__ import annotations

import html
import os
import platform as _platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Literal

__all__ = [
    "DeviceInfo", "RuntimeReport", "detect_platform", "detect_devices", "package_versions",
    "host_memory_bytes", "runtime_report", "PACKAGES",
]

Platform = Literal["colab", "kaggle", "local"]

#: Distributions whose versions the report lists (missing ones show as "not installed").
PACKAGES: tuple[str, ...] = ("keras", "keras-hub", "jax", "jaxlib", "tensorflow", "torch",
                             "kagglehub")


@dataclass(frozen=True)
class DeviceInfo:
    """One accelerator (or the CPU). ``memory_bytes`` is the total the device reports."""

    kind: Literal["gpu", "tpu", "cpu"]
    name: str
    memory_bytes: int | None = None
    compute_capability: str | None = None   # NVIDIA GPUs, e.g. "7.5" for a T4

    def __str__(self) -> str:
        mem = f", {self.memory_bytes / 1e9:.1f} GB" if self.memory_bytes else ""
        cc = f", compute capability {self.compute_capability}" if self.compute_capability else ""
        return f"{self.name}{mem}{cc}"


def detect_platform(environ: dict[str, str] | None = None) -> Platform:
    """``"colab"`` (``COLAB_RELEASE_TAG`` set), ``"kaggle"`` (``KAGGLE_KERNEL_RUN_TYPE``) or ``"local"``.

    Example:
        >>> detect_platform({"COLAB_RELEASE_TAG": "release-colab_20261101-060000_RC00"})
        'colab'
        >>> detect_platform({})
        'local'
    """
    env = os.environ if environ is None else environ
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU") is not None:
        return "colab"
    if env.get("KAGGLE_KERNEL_RUN_TYPE") or env.get("KAGGLE_URL_BASE"):
        return "kaggle"
    return "local"


def parse_nvidia_smi(text: str) -> list[DeviceInfo]:
    """Parse ``nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader,nounits``.

    Example:
        >>> parse_nvidia_smi("Tesla T4, 15360, 7.5")
        [DeviceInfo(kind='gpu', name='Tesla T4', memory_bytes=16106127360, compute_capability='7.5')]
    """
    devices = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if not parts or not parts[0]:
            continue
        mem = None
        if len(parts) > 1 and parts[1].replace(".", "", 1).isdigit():
            mem = int(float(parts[1]) * 1024 * 1024)    # MiB
        cc = parts[2] if len(parts) > 2 and parts[2] not in ("", "[N/A]", "N/A") else None
        devices.append(DeviceInfo("gpu", parts[0], mem, cc))
    return devices


def _nvidia_smi(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[DeviceInfo]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    for fields in ("name,memory.total,compute_cap", "name,memory.total"):  # old drivers lack compute_cap
        try:
            proc = run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                       capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.SubprocessError):
            return []
        if proc.returncode == 0 and proc.stdout.strip():
            return parse_nvidia_smi(proc.stdout)
    return []


def _tpu_from_environment(environ: dict[str, str]) -> list[DeviceInfo]:
    kind = environ.get("TPU_ACCELERATOR_TYPE") or environ.get("TPU_NAME")
    if kind or environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0"):
        return [DeviceInfo("tpu", f"TPU {kind}" if kind else "TPU")]
    return []


def _devices_from_imported_frameworks(probe: bool) -> list[DeviceInfo]:
    """Ask frameworks that are already imported (or all, if ``probe``) for accelerators."""
    out: list[DeviceInfo] = []
    if probe or "torch" in sys.modules:
        try:
            import torch

            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    p = torch.cuda.get_device_properties(i)
                    out.append(DeviceInfo("gpu", p.name, int(p.total_memory), f"{p.major}.{p.minor}"))
                return out
        except Exception:   # noqa: BLE001 - a broken framework must not break the report
            pass
    if probe or "jax" in sys.modules:
        try:
            import jax

            for d in jax.devices():
                if d.platform in ("gpu", "tpu"):
                    stats = getattr(d, "memory_stats", lambda: None)() or {}
                    out.append(DeviceInfo(d.platform, d.device_kind, stats.get("bytes_limit")))
            if out:
                return out
        except Exception:   # noqa: BLE001
            pass
    if probe or "tensorflow" in sys.modules:
        try:
            import tensorflow as tf

            for kind in ("GPU", "TPU"):
                for d in tf.config.list_physical_devices(kind):
                    details = tf.config.experimental.get_device_details(d) if kind == "GPU" else {}
                    cc = details.get("compute_capability")
                    out.append(DeviceInfo(kind.lower(), details.get("device_name", d.name), None,
                                          ".".join(map(str, cc)) if cc else None))
        except Exception:   # noqa: BLE001
            pass
    return out


def detect_devices(*, probe_frameworks: bool = False, environ: dict[str, str] | None = None,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[DeviceInfo]:
    """Accelerators: NVIDIA GPUs (``nvidia-smi``), then TPUs (environment), then imported frameworks.

    Returns ``[]`` when there is no accelerator.

    Example:
        >>> isinstance(detect_devices(), list)
        True
    """
    env = os.environ if environ is None else environ
    return (_nvidia_smi(run) or _tpu_from_environment(env)
            or _devices_from_imported_frameworks(probe_frameworks))


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (``importlib.metadata``), ``None`` for packages that are not installed.

    Example:
        >>> package_versions(("surely-not-installed-xyz",))
        {'surely-not-installed-xyz': None}
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("tensorflow") is None and "tensorflow" in names:   # CPU-only wheels
        for alt in ("tensorflow-cpu", "tf-nightly"):
            try:
                versions["tensorflow"] = metadata.version(alt)
                break
            except metadata.PackageNotFoundError:
                pass
    return versions


def host_memory_bytes() -> int | None:
    """Total host RAM from ``/proc/meminfo`` (Linux), else ``None``.

    Example:
        >>> (host_memory_bytes() or 1) > 0
        True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass
class RuntimeReport:
    """The answer of :func:`runtime_report`; prints as a table, renders as HTML in notebooks."""

    platform: Platform
    devices: list[DeviceInfo]
    backend: str | None
    backend_source: str
    keras_imported: bool
    versions: dict[str, str | None]
    python: str
    cpu_count: int
    host_memory_bytes: int | None
    advice: list[str] = field(default_factory=list)

    @property
    def accelerator(self) -> Literal["none", "gpu", "tpu"]:
        """``"none"``, ``"gpu"`` or ``"tpu"``."""
        return self.devices[0].kind if self.devices else "none"   # type: ignore[return-value]

    @property
    def accelerator_text(self) -> str:
        if not self.devices:
            ram = f", {self.host_memory_bytes / 1e9:.1f} GB RAM" if self.host_memory_bytes else ""
            return f"none (CPU only, {self.cpu_count} cores{ram})"
        names = [str(d) for d in self.devices]
        if len(set(names)) == 1 and len(names) > 1:
            return f"{len(names)} x {names[0]}"
        return "; ".join(names)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs, the content of the table."""
        backend = (f"{self.backend} ({self.backend_source})" if self.backend else
                   "not chosen yet (KERAS_BACKEND unset; keras would default to tensorflow)")
        rows = [("Platform", self.platform), ("Accelerator", self.accelerator_text),
                ("Backend", backend), ("Python", self.python)]
        for name, version in self.versions.items():
            rows.append((name, version or "not installed"))
        rows += [("Advice", a) for a in self.advice]
        return rows

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in self.rows())
        return f"<table>{body}</table>"

    def to_dict(self) -> dict:
        return {"platform": self.platform, "accelerator": self.accelerator,
                "devices": [d.__dict__ for d in self.devices], "backend": self.backend,
                "backend_source": self.backend_source, "versions": dict(self.versions),
                "python": self.python, "cpu_count": self.cpu_count,
                "host_memory_bytes": self.host_memory_bytes, "advice": list(self.advice)}


def _advice(platform: Platform, devices: list[DeviceInfo], backend: str | None,
            env_backend: str | None, versions: dict[str, str | None]) -> list[str]:
    tips: list[str] = []
    if not devices:
        if platform == "colab":
            tips.append("No GPU: pick Runtime → Change runtime type → T4 GPU, then run the "
                        "notebook from the top. The offline practice model works on CPU.")
        elif platform == "kaggle":
            tips.append("No GPU: in the notebook's right sidebar open Session options → "
                        "Accelerator → GPU T4 x2 (phone-verified account needed), then rerun.")
        else:
            tips.append("No GPU: the offline practice model runs fine on CPU; real CodeGemma "
                        "2B needs about 6 GB of GPU memory in float16 (or a lot of patience on CPU).")
    else:
        first = devices[0]
        if first.kind == "gpu":
            cc = first.compute_capability
            no_bf16 = ("T4" in first.name or "V100" in first.name or "P100" in first.name
                       or (cc is not None and float(cc) < 8.0))
            if no_bf16:
                tips.append(f"{first.name} has no native bfloat16: load in float16 "
                            "(cg_helpers.memory.choose_dtype does this).")
            else:
                tips.append(f"{first.name} supports bfloat16: load in bfloat16.")
        elif first.kind == "tpu" and backend not in (None, "jax"):
            tips.append("On a TPU use the JAX backend: use_backend('jax') in a fresh runtime.")
    if env_backend and backend and env_backend != backend:
        tips.append(f"KERAS_BACKEND is {env_backend!r} but keras already runs on {backend!r}: "
                    "restart the runtime for the setting to take effect.")
    if backend and versions.get(backend, "") is None:
        tips.append(f"The {backend} backend is selected but {backend} is not installed.")
    if versions.get("kagglehub") is None:
        tips.append("kagglehub is not installed: `pip install kagglehub` to download CodeGemma.")
    return tips


def runtime_report(*, probe_frameworks: bool = False) -> RuntimeReport:
    """Platform, accelerator, Keras backend, package versions and advice, in one object.

    Args:
        probe_frameworks: also import torch/jax/tensorflow to ask them for devices when
            ``nvidia-smi`` finds nothing (slow; off by default).

    Example:
        >>> r = runtime_report()
        >>> r.accelerator in ("none", "gpu", "tpu")
        True
    """
    from .backend import keras_backend_in_use

    in_use = keras_backend_in_use()
    env_backend = os.environ.get("KERAS_BACKEND")
    if in_use:
        backend, source = in_use, "keras already imported"
    elif env_backend:
        backend, source = env_backend, "KERAS_BACKEND, keras not imported yet"
    else:
        backend, source = None, "KERAS_BACKEND not set"
    platform = detect_platform()
    devices = detect_devices(probe_frameworks=probe_frameworks)
    versions = package_versions()
    return RuntimeReport(
        platform=platform, devices=devices, backend=backend, backend_source=source,
        keras_imported=in_use is not None, versions=versions,
        python=_platform.python_version(), cpu_count=os.cpu_count() or 1,
        host_memory_bytes=host_memory_bytes(),
        advice=_advice(platform, devices, backend, env_backend, versions))
