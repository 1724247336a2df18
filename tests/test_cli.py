"""The command line: argument errors exit 2 with a message, completion on stdout, timing on stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cg_helpers.cli import build_parser, cursor_split, main

ROOT = Path(__file__).resolve().parents[1]
SEED_AFTER = '\nif __name__ == "__main__":\n    sys.exit(0)'


def run_cli(*args, timeout=180):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "cg_helpers", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


def test_cursor_split_line_col():
    text = "import \nx = 1\n"
    assert cursor_split(text, "1:8") == ("import ", "\nx = 1\n")
    assert cursor_split(text, "2:1") == ("import \n", "x = 1\n")
    assert cursor_split(text, "3:1") == (text, "")
    assert cursor_split("a\r\nb", "2:2") == ("a\r\nb", "")


@pytest.mark.parametrize("args, message", [
    (["complete"], "--before"),
    (["complete", "--before", "x<|fim_middle|>"], "--strip-sentinels"),
    (["complete", "--before", "x", "--cursor", "1:1"], "--cursor needs --file"),
    (["complete", "--file", "missing.py"], "does not exist"),
    (["complete", "--file", "examples/seed_example.py", "--cursor", "9:1"], "outside the file"),
    (["complete", "--file", "examples/seed_example.py", "--cursor", "x"], "LINE:COL"),
    (["complete", "--file", "README.md"], "No cursor marker"),
    (["complete", "--before", "x", "--preset", "code_gemma_3b"], "Unknown preset"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["complete", "--max-new-tokens", "0", "--before", "x"],
                                  ["complete", "--backend", "pytorch", "--before", "x"],
                                  ["frobnicate"]])
def test_argparse_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


def test_presets_lists_all_five(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ["code_gemma_2b_en", "code_gemma_1.1_2b_en", "code_gemma_7b_en",
                 "code_gemma_instruct_7b_en", "code_gemma_1.1_instruct_7b_en"]:
        assert name in out
    assert "17.1 GB" in out and "kaggle.com" in out


def test_complete_with_a_local_preset_prints_completion_and_timing(test_preset_dir):
    out = run_cli("complete", "--preset", str(test_preset_dir), "--before", "import ",
                  "--after", SEED_AFTER, "--max-new-tokens", "8", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["prompt"].endswith("<|fim_middle|>") and data["generated_tokens"] <= 9
    assert "<|" not in data["middle"]
    assert "prompt tokens" in out.stderr.splitlines()[-1]


def test_stream_and_file_with_cursor(test_preset_dir, tmp_path):
    src = tmp_path / "app.py"
    src.write_text("import \nprint(1)\n", encoding="utf-8")
    out = run_cli("complete", "--preset", str(test_preset_dir), "--file", str(src),
                  "--cursor", "1:8", "--max-new-tokens", "6", "--stream", "--backend", "tensorflow")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "generated" in out.stderr.splitlines()[-1]


def test_default_is_the_practice_model_and_says_so():
    from cg_helpers.loading import PRACTICE_PRESET_DIR

    if not (PRACTICE_PRESET_DIR / "config.json").exists():
        pytest.skip("practice model not built yet")
    out = run_cli("complete", "--before", "import ", "--after", SEED_AFTER)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "practice model" in out.stderr and "NOT CodeGemma" in out.stderr
    assert out.stdout.strip()


def test_parser_has_evaluate_and_complete():
    parser = build_parser()
    assert parser.parse_args(["complete", "--before", "x"]).command == "complete"
