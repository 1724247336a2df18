"""The shipped offline practice model: loads with from_preset, real token ids, real completions.

The exact expected text is asserted only for what MODEL_CARD.md documents (the `import ` seed).
"""

import json
import re

import pytest

from cg_helpers.fim import FIM_STOP_TOKENS, extract_middle, fim_prompt, find_stop
from cg_helpers.loading import PRACTICE_PRESET_DIR
from cg_helpers.tiny_model import SPECIAL_IDS, read_model_info

pytestmark = pytest.mark.skipif(
    not (PRACTICE_PRESET_DIR / "config.json").is_file(),
    reason="practice preset not built (run tools/train_practice_model.py)")

SEED_BEFORE = "import "
SEED_AFTER = '\nif __name__ == "__main__":\n    sys.exit(0)'


@pytest.fixture(scope="module")
def practice_lm():
    import keras_hub

    return keras_hub.models.GemmaCausalLM.from_preset(str(PRACTICE_PRESET_DIR))


def test_preset_is_small_and_labelled():
    size = sum(p.stat().st_size for p in PRACTICE_PRESET_DIR.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024, f"practice preset is {size / 1e6:.1f} MB, over 20 MB"
    info = read_model_info(PRACTICE_PRESET_DIR)
    assert info["practice"] is True and info["kind"] == "trained"
    assert "not CodeGemma" in info["label"]
    assert info["context_length"] >= 128
    assert (PRACTICE_PRESET_DIR / "MODEL_CARD.md").is_file()
    assert (PRACTICE_PRESET_DIR / "DATA.md").is_file()


def test_special_token_ids_match_codegemma(practice_lm):
    tok = practice_lm.preprocessor.tokenizer
    for piece, expected in SPECIAL_IDS.items():
        assert tok.token_to_id(piece) == expected, piece
    # Control tokens inside a prompt are single ids, not spelled out.
    ids = [int(i) for i in tok("<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>")]
    assert ids[0] == SPECIAL_IDS["<|fim_prefix|>"] and ids[-1] == SPECIAL_IDS["<|fim_middle|>"]
    # Whitespace-exact: indentation and newlines round-trip.
    code = "def f(x):\n\tif x:\n        return  x\n\n"
    assert tok.detokenize(tok(code)) == code


def _complete_seed(lm) -> tuple[str, str | None]:
    prompt = fim_prompt(SEED_BEFORE, SEED_AFTER)
    out = lm.generate(prompt, max_length=64, stop_token_ids=(1, 67, 68, 69, 70), strip_prompt=True)
    _, stop = find_stop(out, FIM_STOP_TOKENS)
    return extract_middle(out), stop


def test_seed_example_completes_one_line_and_stops(practice_lm):
    middle, stop = _complete_seed(practice_lm)
    assert stop is not None, f"no stop token within the budget: {middle!r}"
    assert middle.strip() and "\n" not in middle, f"not a single non-empty line: {middle!r}"
    card = (PRACTICE_PRESET_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    documented = re.search(r"`import ` seed -> `([^`]*)`", card)
    assert documented, "MODEL_CARD.md must document the seed completion"
    assert middle == documented.group(1)


def test_seed_example_completes_an_identifier(practice_lm):
    middle, stop = _complete_seed(practice_lm)
    assert stop is not None
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", middle), f"not an identifier line: {middle!r}"


def test_eval_numbers_are_recorded_in_the_card():
    path = PRACTICE_PRESET_DIR / "eval.json"
    result = json.loads(path.read_text(encoding="utf-8"))["result"]
    assert 0.0 <= result["exact_match"] <= 1.0 and result["cases"] >= 100
    card = (PRACTICE_PRESET_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"{100 * result['exact_match']:.1f} % of {result['cases']} held-out" in card
    assert f"Stops properly**: {100 * result['stops_properly']:.1f} %" in card
