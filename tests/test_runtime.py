"""Tests for cg_helpers.runtime: the report runs here (no GPU) and parses what it is given."""

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from cg_helpers import runtime as rt

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE",
                "TPU_ACCELERATOR_TYPE", "TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_platform_detection(clean_env):
    assert rt.detect_platform() == "local"
    clean_env.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert rt.detect_platform() == "kaggle"
    clean_env.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert rt.detect_platform() == "colab"


def test_report_runs_here_without_gpu(clean_env):
    clean_env.setattr(rt.shutil, "which", lambda name: None)     # no nvidia-smi, as here
    report = rt.runtime_report()
    assert report.platform == "local"
    assert report.accelerator == "none"
    assert report.backend == os.environ["KERAS_BACKEND"]
    assert report.versions["keras"] == metadata.version("keras")
    assert report.versions["keras-hub"] == metadata.version("keras-hub")
    assert report.versions["kagglehub"] == metadata.version("kagglehub")
    text = str(report)
    assert "none (CPU only" in text and "No GPU" in text
    assert "<table>" in report._repr_html_() and "CPU only" in report._repr_html_()
    json.dumps(report.to_dict())


def test_colab_without_gpu_advises_t4(clean_env):
    clean_env.setenv("COLAB_RELEASE_TAG", "x")
    clean_env.setattr(rt.shutil, "which", lambda name: None)
    report = rt.runtime_report()
    assert report.platform == "colab"
    assert any("Runtime → Change runtime type → T4 GPU" in a for a in report.advice)


def test_kaggle_without_gpu_advises_accelerator(clean_env):
    clean_env.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    clean_env.setattr(rt.shutil, "which", lambda name: None)
    assert any("Accelerator" in a for a in rt.runtime_report().advice)


def test_missing_framework_does_not_crash(clean_env):
    real = metadata.version

    def fake_version(name):
        if name in ("torch", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "tf-nightly"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    clean_env.setattr(rt.metadata, "version", fake_version)
    report = rt.runtime_report()
    assert report.versions["torch"] is None and report.versions["tensorflow"] is None
    assert "torch" in str(report) and "not installed" in str(report)


def test_gpu_from_nvidia_smi_output(clean_env):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="Tesla T4, 15360, 7.5\nTesla T4, 15360, 7.5\n")

    clean_env.setattr(rt.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    devices = rt.detect_devices(run=fake_run)
    assert [d.name for d in devices] == ["Tesla T4", "Tesla T4"]
    assert devices[0].memory_bytes == 15360 * 2**20 and devices[0].compute_capability == "7.5"
    assert "--format=csv,noheader,nounits" in calls[0]
    clean_env.setattr(rt, "detect_devices", lambda **kw: devices)
    report = rt.runtime_report()
    assert report.accelerator == "gpu"
    assert report.accelerator_text.startswith("2 x Tesla T4, 16.1 GB")
    assert any("float16" in a and "bfloat16" in a for a in report.advice)


def test_old_driver_without_compute_cap_falls_back(clean_env):
    def fake_run(cmd, **kw):
        if "compute_cap" in cmd[1]:
            return subprocess.CompletedProcess(cmd, 2, stdout="", stderr="Field invalid")
        return subprocess.CompletedProcess(cmd, 0, stdout="NVIDIA A100-SXM4-40GB, 40960\n")

    clean_env.setattr(rt.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    (dev,) = rt.detect_devices(run=fake_run)
    assert dev.name == "NVIDIA A100-SXM4-40GB" and dev.compute_capability is None


def test_tpu_from_environment(clean_env):
    clean_env.setattr(rt.shutil, "which", lambda name: None)
    clean_env.setenv("TPU_ACCELERATOR_TYPE", "v3-8")
    (dev,) = rt.detect_devices()
    assert dev.kind == "tpu" and "v3-8" in dev.name


def test_report_imports_no_framework():
    code = textwrap.dedent("""
        import json, sys
        from cg_helpers.runtime import runtime_report
        r = runtime_report()
        heavy = [m for m in ("keras", "keras_hub", "jax", "tensorflow", "torch") if m in sys.modules]
        print(json.dumps({"heavy": heavy, "backend": r.backend}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"heavy": [], "backend": None}
