"""Shared fixtures. The Keras backend is chosen here, before anything imports keras.

Override with ``CG_TEST_BACKEND=tensorflow pytest`` (or ``torch``). Tests that need a specific
backend run it in a subprocess.
"""

import os

os.environ.setdefault("KERAS_BACKEND", os.environ.get("CG_TEST_BACKEND", "jax"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never touch the network: make kagglehub/HF fail fast if something tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def test_preset_dir(tmp_path_factory):
    """A random tiny GemmaCausalLM with CodeGemma's tokens, saved once per session."""
    from cg_helpers.tiny_model import make_test_preset

    return make_test_preset(tmp_path_factory.mktemp("presets") / "tiny_random")


@pytest.fixture(scope="session")
def test_lm(test_preset_dir):
    """The tiny random model loaded through GemmaCausalLM.from_preset, as users load CodeGemma."""
    import keras_hub

    return keras_hub.models.GemmaCausalLM.from_preset(str(test_preset_dir))


@pytest.fixture(scope="session")
def test_tokenizer(test_lm):
    return test_lm.preprocessor.tokenizer


def _has_gpu() -> bool:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def pytest_collection_modifyitems(config, items):
    """Skip (never fake) tests that need real Kaggle weights or a GPU unless they are there.

    Kaggle tests also need ``CG_RUN_KAGGLE=1``: they download gigabytes.
    """
    run_kaggle = os.environ.get("CG_RUN_KAGGLE") == "1"
    gpu = None
    for item in items:
        if "kaggle_key_required" in item.keywords and not run_kaggle:
            item.add_marker(pytest.mark.skip(
                reason="needs Kaggle credentials and network: set CG_RUN_KAGGLE=1 to run"))
        if "gpu_required" in item.keywords:
            gpu = _has_gpu() if gpu is None else gpu
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs a GPU (none found)"))
