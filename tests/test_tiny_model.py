"""The tiny local models: CodeGemma's special ids, whitespace-exact tokenizer, preset round trip."""

import json

import numpy as np
import pytest

from cg_helpers import fim
from cg_helpers.tiny_model import (MODEL_INFO_FILE, SPECIAL_IDS, builtin_corpus, read_model_info,
                                   write_model_info)

CODE_SAMPLES = [
    "def f(x):\n\tif x:\n        return  x  \r\n",
    "    \n\n\n   # trailing   spaces   \n",
    "s = 'ünïcödé ✓ 数据'\n",
    "x=1;y=22;z=333\n",
]


def test_special_ids_are_codegemmas(test_tokenizer):
    for piece, expected in SPECIAL_IDS.items():
        assert test_tokenizer.token_to_id(piece) == expected
        assert test_tokenizer.id_to_token(expected) == piece
    assert test_tokenizer.start_token_id == 2 and test_tokenizer.end_token_id == 1
    assert test_tokenizer.pad_token_id == 0


@pytest.mark.parametrize("text", CODE_SAMPLES)
def test_tokenizer_round_trips_code_exactly(test_tokenizer, text):
    ids = test_tokenizer.tokenize(text)
    assert test_tokenizer.detokenize(ids) == text


def test_sentinels_are_single_tokens(test_tokenizer):
    prompt = fim.fim_prompt("a", "b")
    ids = [int(i) for i in test_tokenizer.tokenize(prompt)]
    assert ids[0] == 67 and ids[-1] == 68 and 69 in ids


def test_preset_dir_has_keras_hub_files_and_info(test_preset_dir):
    for name in ["config.json", "task.json", "preprocessor.json", "tokenizer.json",
                 "metadata.json", "model.weights.h5", MODEL_INFO_FILE]:
        assert (test_preset_dir / name).exists(), name
    info = read_model_info(test_preset_dir)
    assert info["practice"] is True and "not CodeGemma" in info["label"]
    assert json.loads((test_preset_dir / "config.json").read_text())["config"]["num_key_value_heads"] == 1


def test_from_preset_gives_a_working_gemma_causal_lm(test_lm):
    import keras_hub

    assert isinstance(test_lm, keras_hub.models.GemmaCausalLM)
    out = test_lm.generate(fim.fim_prompt("import ", "\n"), max_length=24,
                           stop_token_ids=(1, 67, 68, 69, 70), strip_prompt=True)
    assert isinstance(out, str)


def test_model_info_round_trip(tmp_path):
    assert read_model_info(tmp_path) == {}
    write_model_info(tmp_path, {"label": "x", "practice": True})
    assert read_model_info(tmp_path) == {"label": "x", "practice": True}


def test_builtin_corpus_is_deterministic():
    a, b = builtin_corpus(5), builtin_corpus(5)
    assert a == b and len(a) == 5 and all("def " in t or "class " in t for t in a)
