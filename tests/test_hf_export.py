"""Keras → transformers export: same tokens, same logits, same greedy output."""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from cg_helpers.fim import FIM_STOP_TOKENS, extract_middle, fim_prompt
from cg_helpers.tiny_model import MODEL_INFO_FILE, SPECIAL_IDS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CODE_TEXTS = [
    "import ",
    "def f(x):\n\treturn  x  +   1\n",
    "    indented\n\n\n        deeper\t\ttabs   \n",
    " leading space and trailing spaces   ",
    "if a:\r\n    b = 'ünïcödé → 🎉'\n",
    fim_prompt("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"),
    "x = 1<|file_separator|>y.py\n<start_of_turn>user<end_of_turn>",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def exported(test_preset_dir, tmp_path_factory):
    from cg_helpers.hf_export import export_to_transformers

    return export_to_transformers(test_preset_dir, tmp_path_factory.mktemp("hf") / "tiny_hf")


@pytest.fixture(scope="module")
def hf(exported):
    from cg_helpers.hf_export import load_transformers

    return load_transformers(exported)


def _keras_ids(tokenizer, text):
    return [int(i) for i in np.asarray(tokenizer(text)).reshape(-1)]


def test_export_writes_a_transformers_gemma_directory(exported, test_preset_dir):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors",
            "tokenizer.model", "tokenizer_config.json", MODEL_INFO_FILE} <= names
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "gemma"
    assert config["hidden_activation"] == "gelu_pytorch_tanh"
    assert config["tie_word_embeddings"] is True
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (2, 1, 0)
    # The practice/random label travels with the weights.
    info = json.loads((exported / MODEL_INFO_FILE).read_text())
    assert "not CodeGemma" in info["label"]


def test_loads_with_auto_classes_and_gemma_tokenizer(exported, hf):
    tokenizer, model = hf
    assert type(model).__name__ == "GemmaForCausalLM"
    assert type(tokenizer).__name__.startswith("GemmaTokenizer")
    again = transformers.GemmaTokenizer.from_pretrained(str(exported), local_files_only=True)
    assert again("import ")["input_ids"] == tokenizer("import ")["input_ids"]


def test_special_token_ids_match_codegemma(hf, test_tokenizer):
    tokenizer, _ = hf
    for piece, want in SPECIAL_IDS.items():
        assert tokenizer.convert_tokens_to_ids(piece) == want, piece
        assert test_tokenizer.token_to_id(piece) == want, piece
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id,
            tokenizer.unk_token_id) == (0, 1, 2, 3)


@pytest.mark.parametrize("text", CODE_TEXTS)
def test_token_ids_identical_and_whitespace_exact(hf, test_tokenizer, text):
    tokenizer, _ = hf
    want = _keras_ids(test_tokenizer, text)
    got = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert got == want
    # add_bos like keras-hub's preprocessor; no dummy prefix, no whitespace normalisation.
    assert tokenizer(text)["input_ids"] == [2] + want
    assert tokenizer.decode(got) == text


def test_logits_close(hf, test_lm, test_tokenizer):
    _, model = hf
    text = fim_prompt("class Stack:\n\tdef push(self, x):\n\t\t", "\n\n    def pop(self):\n")
    ids = [2] + _keras_ids(test_tokenizer, text)
    assert len(ids) > 20
    keras_logits = np.asarray(test_lm({"token_ids": np.array([ids]),
                                       "padding_mask": np.ones((1, len(ids)), bool)}))
    with torch.no_grad():
        hf_logits = model(torch.tensor([ids])).logits.numpy()
    assert hf_logits.shape == keras_logits.shape
    assert np.abs(keras_logits).max() > 0.05          # not trivially zero
    np.testing.assert_allclose(hf_logits, keras_logits, atol=1e-4, rtol=0)


def test_greedy_fim_output_identical(hf, test_lm):
    tokenizer, model = hf
    prompt = fim_prompt("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    # CodeGemma's FIM stop tokens on both sides; up to 16 new tokens.
    stop_ids = [SPECIAL_IDS[t] for t in FIM_STOP_TOKENS]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False,
                             eos_token_id=stop_ids, pad_token_id=0)
    new = out[0, n:].tolist()
    keras_text = test_lm.generate(prompt, max_length=n + 16, stop_token_ids=tuple(stop_ids),
                                  strip_prompt=True)
    hf_text = tokenizer.decode(new)
    assert hf_text == keras_text
    assert len(new) >= 8            # enough tokens to compare (this random model writes 16)
    assert extract_middle(hf_text) == extract_middle(keras_text)


def test_refuses_to_overwrite(exported, test_lm):
    from cg_helpers.hf_export import export_to_transformers

    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_to_transformers(test_lm, exported)


def test_rejects_wrong_inputs(tmp_path):
    from cg_helpers.hf_export import export_to_transformers

    with pytest.raises(TypeError, match="GemmaCausalLM"):
        export_to_transformers(42, tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        export_to_transformers(tmp_path / "no_such_preset", tmp_path / "y")


def test_rejects_gemma2_features():
    import keras_hub

    from cg_helpers.hf_export import _check_exportable

    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=16, num_layers=1, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=8, intermediate_dim=16, head_dim=4, use_post_ffw_norm=True)
    with pytest.raises(ValueError, match="Gemma 2 feature"):
        _check_exportable(SimpleNamespace(backbone=backbone, preprocessor=None))


def test_rejects_quantized_model():
    import keras_hub

    from cg_helpers.hf_export import _check_exportable

    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=16, num_layers=1, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=8, intermediate_dim=16, head_dim=4)
    _check_exportable(SimpleNamespace(backbone=backbone, preprocessor=SimpleNamespace(
        tokenizer=object())))          # float model: accepted
    backbone.quantize("int8")
    with pytest.raises(ValueError, match="quantized"):
        _check_exportable(SimpleNamespace(backbone=backbone, preprocessor=None))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_export_on_other_backends(backend, test_preset_dir, exported, tmp_path):
    code = textwrap.dedent(f"""
        import os
        os.environ["KERAS_BACKEND"] = {backend!r}
        from cg_helpers.hf_export import export_to_transformers
        export_to_transformers({str(test_preset_dir)!r}, {str(tmp_path / "out")!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "KERAS_BACKEND": backend})
    from safetensors.numpy import load_file

    want = load_file(str(exported / "model.safetensors"))
    got = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
