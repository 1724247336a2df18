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
