"""FIM prompt building, cursor splitting, sentinel handling, cleaning and the token budget.

Pure Python: these tests never import keras (checked below), except the budget tests at the end
that use the tiny model's real SentencePiece tokenizer.
"""

import subprocess
import sys

import pytest

from cg_helpers import fim
from cg_helpers.fim import (
    FILE_SEPARATOR, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, ContextFile, CursorError, SentinelError,
    check_user_text, chat_prompt, extract_middle, extract_reply, fim_prompt, find_stop,
    fit_to_budget, splice, split_at_cursor,
)

SEED_BEFORE = "import "
SEED_AFTER = '\nif __name__ == "__main__":\n    sys.exit(0)'


def test_importing_fim_does_not_import_keras():
    code = "import sys, cg_helpers.fim, cg_helpers.loading; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("before, after", [
    (SEED_BEFORE, SEED_AFTER),
    ("", ""),
    ("", "tail"),
    ("head", ""),
    ("\tif x:\n\t\treturn 'héllo ✓'", "\n"),
    ("line1\r\nline2\r\n", "\r\nline3"),
    ("  \n   ", "   \n"),
    ("数据 = 1\n", "# 終わり"),
])
def test_fim_prompt_is_byte_exact(before, after):
    prompt = fim_prompt(before, after)
    assert prompt == "<|fim_prefix|>" + before + "<|fim_suffix|>" + after + "<|fim_middle|>"
    assert prompt.encode("utf-8") == (FIM_PREFIX + before + FIM_SUFFIX + after + FIM_MIDDLE).encode("utf-8")
    assert prompt.endswith(FIM_MIDDLE)


def test_seed_example_matches_the_model_card():
    assert fim_prompt(SEED_BEFORE, SEED_AFTER) == (
        '<|fim_prefix|>import <|fim_suffix|>\nif __name__ == "__main__":\n    sys.exit(0)<|fim_middle|>')


def test_path_comes_first_followed_by_newline():
    assert fim_prompt("a", "b", path="pkg/mod.py") == "pkg/mod.py\n<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"


def test_multi_file_context_format():
    prompt = fim_prompt("x = add(", ")", path="main.py", context_files=[
        ContextFile("utils.py", "def add(a, b):\n    return a + b\n"), ("consts.py", "N = 3\n")])
    assert prompt == (
        "utils.py\ndef add(a, b):\n    return a + b\n" + FILE_SEPARATOR
        + "consts.py\nN = 3\n" + FILE_SEPARATOR
        + "main.py\n" + FIM_PREFIX + "x = add(" + FIM_SUFFIX + ")" + FIM_MIDDLE)
    # Only the current file is in FIM form.
    assert prompt.count(FIM_PREFIX) == prompt.count(FIM_MIDDLE) == 1


def test_bad_types_and_paths_are_clear_errors():
    with pytest.raises(TypeError, match="code before the cursor must be a str"):
        fim_prompt(123, "")
    with pytest.raises(TypeError, match="after the cursor"):
        fim_prompt("", None)
    with pytest.raises(fim.FIMError, match="newline"):
        fim_prompt("a", "b", path="a\nb.py")


def test_sentinel_typed_by_user_is_an_error_naming_token_and_offset():
    code = "s = '<|fim_middle|>'\n"
    with pytest.raises(SentinelError) as err:
        fim_prompt(code, "")
    assert err.value.token == "<|fim_middle|>" and err.value.offset == 5
    assert "<|fim_middle|>" in str(err.value) and "character 5" in str(err.value)
    assert "on_sentinel='strip'" in str(err.value)
    with pytest.raises(SentinelError, match="after the cursor"):
        fim_prompt("", "x<eos>")
    with pytest.raises(SentinelError, match="context file 'u.py'"):
        fim_prompt("", "", context_files=[("u.py", "<|file_separator|>")])


def test_strip_mode_removes_sentinels_including_nested_ones():
    assert check_user_text("a<|fim_<|fim_middle|>middle|>b", on_sentinel="strip") == "ab"
    assert fim_prompt("x<eos>", "<end_of_turn>y", on_sentinel="strip") == fim_prompt("x", "y")


def test_cursor_split_and_its_errors():
    assert split_at_cursor("import <CURSOR>\nsys.exit(0)") == ("import ", "\nsys.exit(0)")
    assert split_at_cursor("<CURSOR>") == ("", "")
    assert split_at_cursor("a|b", marker="|") == ("a", "b")
    with pytest.raises(CursorError, match="No cursor marker"):
        split_at_cursor("no marker")
    with pytest.raises(CursorError, match="2 times .*characters 1, 10"):
        split_at_cursor("a<CURSOR>b<CURSOR>")
    with pytest.raises(CursorError, match="empty"):
        split_at_cursor("x", marker="")


@pytest.mark.parametrize("generated, expected", [
    ("sys<|file_separator|>junk", "sys"),
    ("sys<eos>", "sys"),
    ("sys\n<|fim_prefix|>more", "sys\n"),
    ("sys", "sys"),
    ("<|fim_suffix|>x", ""),
    ("a<|fim_middle|>b", "a"),
])
def test_extract_middle_without_echo(generated, expected):
    assert extract_middle(generated) == expected


def test_extract_middle_with_echoed_prompt():
    prompt = fim_prompt(SEED_BEFORE, SEED_AFTER)
    assert extract_middle(prompt + "sys<|file_separator|>", prompt) == "sys"
    assert extract_middle("<bos>" + prompt + "sys<eos>", prompt) == "sys"
    # An echo that differs slightly (e.g. a path line, <bos>) is cut after <|fim_middle|>.
    assert extract_middle("a.py\n<|fim_prefix|>import <|fim_suffix|>\n<|fim_middle|>sys<eos>") == "sys"
    # The middle may itself look like code that appears in the prompt.
    assert extract_middle(prompt + "import<eos>", prompt) == "import"


def test_find_stop_and_splice():
    assert find_stop("abc") == (3, None)
    assert find_stop("a<eos>b<|file_separator|>") == (1, "<eos>")
    assert splice(SEED_BEFORE, "sys", SEED_AFTER) == 'import sys\nif __name__ == "__main__":\n    sys.exit(0)'


def test_chat_template_and_reply():
    assert chat_prompt("Hi") == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    multi = chat_prompt([("user", "a"), ("model", "b"), ("user", "c")])
    assert multi.endswith("<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n")
    assert extract_reply("It adds.<end_of_turn>\n<start_of_turn>user") == "It adds."
    assert extract_reply(multi + "ok<eos>", multi) == "ok"
    with pytest.raises(ValueError, match="role"):
        chat_prompt([("system", "x")])


# ------------------------------------------------------------------ token budget

def char_tokenizer(text):
    return list(text)


def test_budget_leaves_prompt_untouched_when_it_fits():
    fit = fit_to_budget("abc", "def", char_tokenizer, 200, 10)
    assert fit.prompt == fim_prompt("abc", "def") and not fit.truncated


def test_budget_keeps_text_nearest_the_cursor_in_whole_lines():
    before = "".join(f"b{i:03d}\n" for i in range(100))
    after = "".join(f"a{i:03d}\n" for i in range(100))
    fit = fit_to_budget(before, after, char_tokenizer, 300, 20)
    assert fit.prompt.endswith(FIM_MIDDLE) and FIM_SUFFIX in fit.prompt
    assert fit.prompt_tokens <= 300 - 20
    assert before.endswith(fit.before) and after.startswith(fit.after)
    assert fit.before.startswith("b") and fit.before.endswith("b099\n")   # whole lines
    assert fit.after.startswith("a000\n") and fit.after.endswith("\n")
    assert fit.dropped_before_chars == len(before) - len(fit.before) > 0
    assert len(fit.before) > len(fit.after)          # the prefix gets the larger share


def test_budget_gives_unused_suffix_room_to_the_prefix():
    before = "x\n" * 500
    fit = fit_to_budget(before, "end", char_tokenizer, 300, 10)
    used = len(fim_prompt(fit.before, fit.after)) + 1
    assert fit.after == "end" and used >= 300 - 10 - 2


def test_budget_on_one_huge_line_keeps_the_characters_nearest_the_cursor():
    fit = fit_to_budget("y" * 10_000 + "TAIL", "HEAD" + "z" * 10_000, char_tokenizer, 200, 10)
    assert fit.before.endswith("TAIL") and fit.after.startswith("HEAD")
    assert fit.prompt_tokens <= 190


def test_budget_never_tokenizes_a_huge_file_whole():
    seen = []

    def recording_tokenizer(text):
        seen.append(len(text))
        return list(text)

    before = "".join(f"line {i}\n" for i in range(200_000)) + "x = "      # ~2 MB
    after = "y" * 1_000_000 + "\nlast line\n"          # the cursor's line is 1 MB long
    fit = fit_to_budget(before, after, recording_tokenizer, 300, 20)
    assert fit.before.endswith("line 199999\nx = ") and fit.after.startswith("yyy")
    assert fit.prompt_tokens <= 280 and fit.prompt.endswith(FIM_MIDDLE)
    assert max(seen) < 300 * fim._MAX_CHARS_PER_TOKEN


def test_budget_error_when_context_files_alone_overflow():
    with pytest.raises(fim.BudgetError, match="context files alone"):
        fit_to_budget("a", "b", char_tokenizer, 100, 10, context_files=[("big.py", "x" * 500)])


def test_ten_thousand_line_file_keeps_suffix_and_fim_middle(test_tokenizer):
    lines = [f"value_{i} = compute({i}, factor={i % 7})\n" for i in range(10_000)]
    cursor = 6_000
    before = "".join(lines[:cursor]) + "result = "
    after = "\n" + "".join(lines[cursor:])
    fit = fit_to_budget(before, after, test_tokenizer, 512, 32)
    ids = list(test_tokenizer.tokenize(fit.prompt))
    assert len(ids) + 1 <= 512 - 32 and fit.prompt_tokens == len(ids) + 1
    assert fit.prompt.endswith(FIM_MIDDLE)
    assert fit.before.endswith("value_5999 = compute(5999, factor=0)\nresult = ")
    assert fit.after.startswith("\nvalue_6000 = compute(6000, factor=1)\n")
    assert test_tokenizer.token_to_id(FIM_MIDDLE) == ids[-1]
