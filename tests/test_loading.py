"""Preset table, preset resolution and load_model on a local preset directory."""

import pytest

from cg_helpers import loading
from cg_helpers.loading import PRESETS, load_model, resolve_preset


def test_table_has_the_five_presets_with_real_sizes():
    assert set(PRESETS) == {"code_gemma_2b_en", "code_gemma_1.1_2b_en", "code_gemma_7b_en",
                            "code_gemma_instruct_7b_en", "code_gemma_1.1_instruct_7b_en"}
    two, seven = PRESETS["code_gemma_2b_en"], PRESETS["code_gemma_7b_en"]
    assert two.params == 2_506_172_416 and seven.params == 8_537_680_896
    assert round(two.weight_bytes("bfloat16") / 1e9, 2) == 5.01
    assert round(seven.weight_bytes("bfloat16") / 1e9, 2) == 17.08
    assert seven.weight_bytes("int8") == seven.params and seven.weight_bytes("int4") == seven.params // 2
    assert two.kv_cache_bytes_per_token() == 18 * 1024
    assert seven.kv_cache_bytes_per_token() == 448 * 1024
    assert [p.kind for p in PRESETS.values()].count("instruct") == 2
    with pytest.raises(ValueError, match="Unknown dtype"):
        two.weight_bytes("float8")


def test_table_matches_keras_hub_metadata():
    from keras_hub.src.models.gemma.gemma_presets import backbone_presets

    for name, info in PRESETS.items():
        assert backbone_presets[name]["metadata"]["params"] == info.params
        assert backbone_presets[name]["kaggle_handle"] == info.kaggle_handle


def test_resolve_keeps_kaggle_names_untouched(tmp_path):
    assert resolve_preset("code_gemma_7b_en") == ("code_gemma_7b_en", False)
    assert resolve_preset("kaggle://keras/codegemma/keras/code_gemma_2b_en/2")[1] is False
    with pytest.raises(ValueError, match="Unknown preset 'gemma_9b'.*code_gemma_2b_en"):
        resolve_preset("gemma_9b")
    with pytest.raises(FileNotFoundError, match="not a KerasHub preset"):
        resolve_preset(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No preset directory"):
        resolve_preset("./nowhere/preset")
    with pytest.raises(TypeError):
        resolve_preset(42)


def test_practice_path_override_and_missing_message(monkeypatch, tmp_path):
    monkeypatch.setenv("CG_PRACTICE_PRESET", str(tmp_path))
    assert loading.practice_preset_path() == tmp_path
    monkeypatch.delenv("CG_PRACTICE_PRESET")
    monkeypatch.setattr(loading, "PRACTICE_PRESET_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="train_practice_model.py"):
        loading.practice_preset_path()


def test_load_model_from_local_dir(test_preset_dir):
    loaded = load_model(test_preset_dir)
    assert loaded.is_practice and "not CodeGemma" in loaded.label
    assert loaded.context_length == 512 and loaded.kind == "fim"
    assert type(loaded.model).__name__ == "GemmaCausalLM"
    assert "not CodeGemma" in repr(loaded)


def test_load_model_passes_dtype(test_preset_dir):
    loaded = load_model(str(test_preset_dir), dtype="bfloat16")
    assert loaded.dtype == "bfloat16"
    assert loaded.model.backbone.token_embedding.embeddings.dtype == "bfloat16"


@pytest.mark.kaggle_key_required
@pytest.mark.gpu_required
def test_load_real_codegemma_2b_and_complete_the_seed_example():
    """Runs only with CG_RUN_KAGGLE=1, Kaggle credentials and a GPU (e.g. on a Colab T4)."""
    from cg_helpers.completion import Completer

    loaded = load_model("code_gemma_2b_en", dtype="float16")
    assert not loaded.is_practice
    r = Completer.from_loaded(loaded).complete("import ", '\nif __name__ == "__main__":\n    sys.exit(0)')
    assert r.middle.strip() == "sys" and r.stop_reason in ("sentinel", "eos")


def test_gated_403_becomes_an_actionable_error(monkeypatch):
    """A faked keras-hub 403 (no network): the message names the terms page to accept."""
    import keras_hub

    def refuse(preset, **kwargs):
        raise FileNotFoundError(
            f"`config.json` is not accessible in preset directory `{preset}`. If this model is "
            "gated, accept its terms on kaggle.com and retry.")

    monkeypatch.setattr(keras_hub.models.GemmaCausalLM, "from_preset", refuse)
    with pytest.raises(Exception) as err:
        load_model("code_gemma_7b_en")
    assert "https://www.kaggle.com/models/keras/codegemma/keras/code_gemma_7b_en" in str(err.value)


def test_load_or_practice_falls_back_loudly_without_credentials(monkeypatch, tmp_path, test_preset_dir):
    from cg_helpers.loading import load_or_practice

    for var in ["KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CG_PRACTICE_PRESET", str(test_preset_dir))
    said = []
    loaded = load_or_practice("code_gemma_2b_en", echo=said.append)
    text = "\n".join(said)
    assert loaded.is_practice
    assert "No usable Kaggle credentials" in text and "NOT CodeGemma" in text
    assert "dtype: float32" in text                       # CPU here


def test_load_or_practice_offline_skips_credentials(monkeypatch, test_preset_dir):
    from cg_helpers.loading import load_or_practice

    monkeypatch.setenv("CG_PRACTICE_PRESET", str(test_preset_dir))
    said = []
    loaded = load_or_practice("code_gemma_7b_en", offline=True, dtype="float32", echo=said.append)
    assert loaded.is_practice and len(said) == 1 and "OFFLINE PRACTICE MODEL" in said[0]
