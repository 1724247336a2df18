"""The notebooks: static checks over every ``notebooks/*.ipynb``, then each one executed offline.

Static checks (fast, no kernel): valid nbformat, outputs stripped, one ``parameters`` cell with
the conventional knobs, an "Open in Colab" badge pointing at the notebook's own path, the Keras
backend chosen before keras is imported, guarded installs, a recap linking the next notebook,
and no function defined in two notebooks.

Execution (marked ``notebooks``; deselect with ``-m "not notebooks"``): each notebook runs with
papermill in a fresh kernel, ``-p OFFLINE True``, in a temp dir, with a fake Kaggle key planted
in the environment. Any cell error fails the test; then facts are asserted on the outputs
(structure, never exact generated text) and the fake key must appear nowhere.

The offline model is the shipped practice model; when it is missing (before it is trained), the
session's random test preset stands in via ``CG_PRACTICE_PRESET``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
NAMES = [p.name for p in NOTEBOOKS]
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/cg-helpers/codegemma-notebooks/blob/main/"
         "notebooks/{name})")
COLAB_LINK = re.compile(r"colab\.research\.google\.com/github/[^)\s]*?/notebooks/([^)\s]+\.ipynb)")
KERAS_IMPORT = re.compile(r"^\s*(import|from)\s+(keras|keras_hub|keras_nlp)\b")
# Calls that import keras inside cg_helpers: they also must come after the backend choice.
KERAS_USE = re.compile(r"\b(load_model|export_to_transformers|make_test_preset)\s*\(")
BACKEND_CHOICE = re.compile(r"\buse_backend\s*\(|KERAS_BACKEND[\"']\s*\]\s*=|setdefault\(\s*[\"']KERAS_BACKEND")
DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.M)
FAKE_USER = "cg-notebook-test-user"


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, f"expected the notebook suite in {NB_DIR}, found {NAMES}"


# --------------------------------------------------------------------------- static checks

@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_name_is_numbered_without_spaces(path):
    assert re.fullmatch(r"\d{2}_[a-z0-9_]+\.ipynb", path.name), (
        f"{path.name}: name notebooks NN_lowercase_words.ipynb (no spaces or brackets)")


def test_numbers_are_unique():
    numbers = [n[:2] for n in NAMES]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {NAMES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_valid_nbformat(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_stripped(path):
    nb = _read(path)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs or execution counts; run "
                       "`python tools/notebooks.py strip notebooks/*.ipynb`")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{path.name}: metadata.kernelspec must be python3"
    assert "papermill" not in nb.metadata and "widgets" not in nb.metadata, \
        f"{path.name}: per-run metadata (papermill/widget state) is committed; strip it"
    leftovers = [i for i, c in enumerate(nb.cells)
                 if set(c.get("metadata", {})) & {"papermill", "execution", "scrolled", "collapsed"}]
    assert not leftovers, f"{path.name}: cells {leftovers} carry per-run metadata; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_machine_paths_in_sources(path):
    text = "\n".join(c.source for c in _read(path).cells)
    for marker in ("/work/", "/root/", "/home/", "C:\\Users", "site-packages"):
        assert marker not in text, f"{path.name}: a machine path ({marker}) is in a cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_title_goal_and_badge(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), \
        f"{path.name}: the first cell must be a markdown title"
    assert BADGE.format(name=path.name) in first.source, \
        f"{path.name}: the first cell needs the Colab badge for notebooks/{path.name}"
    assert "Goal" in first.source or len(first.source) > 300, f"{path.name}: no goal paragraph"
    targets = {m for c in nb.cells if c.cell_type == "markdown"
               for m in COLAB_LINK.findall(c.source)}
    assert targets == {path.name}, f"{path.name}: Colab links point at {sorted(targets)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_one_parameters_cell(path):
    nb = _read(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', need one"
    cell = tagged[0]
    assert cell.cell_type == "code"
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    from cg_helpers.loading import PRESETS

    for name in ("PRESET", "BACKEND", "DTYPE", "OFFLINE"):
        assert name in values, f"{path.name}: the parameters cell has no {name}"
    assert values["PRESET"] in PRESETS, f"{path.name}: PRESET must default to a real preset"
    assert values["BACKEND"] in ("jax", "tensorflow", "torch")
    assert values["DTYPE"] is None or values["DTYPE"] in ("float16", "bfloat16", "float32")
    assert values["OFFLINE"] is False, f"{path.name}: the real path must be the default"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_backend_chosen_before_keras(path):
    lines = [line for c in _code_cells(_read(path)) for line in c.source.splitlines()]
    choice = next((i for i, l in enumerate(lines) if BACKEND_CHOICE.search(l)), None)
    first_keras = next((i for i, l in enumerate(lines)
                        if KERAS_IMPORT.search(l) or KERAS_USE.search(l)), None)
    if first_keras is None:
        return
    assert choice is not None, f"{path.name}: keras is used but the backend is never chosen"
    assert choice < first_keras, (
        f"{path.name}: {lines[first_keras].strip()!r} comes before the backend choice "
        f"{lines[choice].strip()!r}; keras reads KERAS_BACKEND only once")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_installs_are_guarded(path):
    nb = _read(path)
    text = "\n".join(c.source for c in _code_cells(nb))
    pip_lines = [l for l in text.splitlines() if re.match(r"\s*[%!]\s*pip\b", l)]
    assert pip_lines, f"{path.name}: no install cell"
    assert all(l.startswith((" ", "\t")) for l in pip_lines), \
        f"{path.name}: %pip must run only inside a platform check: {pip_lines}"
    assert "COLAB_RELEASE_TAG" in text or "google.colab" in text, \
        f"{path.name}: the install is not guarded by platform detection"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_ends_with_recap_and_next(path):
    last = _read(path).cells[-1]
    assert last.cell_type == "markdown" and "recap" in last.source.lower(), \
        f"{path.name}: end with a recap"
    if path != NOTEBOOKS[-1]:
        links = re.findall(r"\]\((\d{2}_[a-z0-9_]+\.ipynb)\)", last.source)
        assert links, f"{path.name}: the recap needs a link to the next notebook"
        assert all((NB_DIR / l).exists() for l in links), f"{path.name}: broken link in {links}"
        assert any(l > path.name for l in links), f"{path.name}: no link forward ({links})"


def test_no_function_defined_in_two_notebooks():
    owners: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        names = {m for c in _code_cells(_read(path)) for m in DEF.findall(c.source)}
        for name in names:
            owners.setdefault(name, []).append(path.name)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    assert not shared, f"defined in several notebooks (move them to cg_helpers): {shared}"


# --------------------------------------------------------------------------- execution

@pytest.fixture(scope="module")
def fake_key():
    """A fresh fake key per run, shaped like a real legacy key (32 hex characters)."""
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def practice_env(request):
    """``CG_PRACTICE_PRESET`` for the kernels: empty when the shipped practice model exists."""
    from cg_helpers.loading import PRACTICE_PRESET_DIR

    if os.environ.get("CG_PRACTICE_PRESET"):
        return {"CG_PRACTICE_PRESET": os.environ["CG_PRACTICE_PRESET"]}
    if (PRACTICE_PRESET_DIR / "config.json").is_file():
        return {}
    return {"CG_PRACTICE_PRESET": str(request.getfixturevalue("test_preset_dir"))}


def _kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return "python3" in KernelSpecManager().find_kernel_specs()


def _outputs(nb: nbformat.NotebookNode) -> list[str]:
    """The text of each code cell's outputs (streams, text/plain, text/html, errors)."""
    texts = []
    for cell in _code_cells(nb):
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
            else:
                data = out.get("data", {})
                parts += [data.get(k, "") for k in ("text/plain", "text/html", "text/markdown")]
        texts.append("".join(p if isinstance(p, str) else "".join(p) for p in parts))
    return texts


def _line_value(text: str, label: str) -> str:
    """The rest of the first output line starting with ``label``."""
    for line in text.splitlines():
        if line.startswith(label):
            return line[len(label):].strip()
    raise AssertionError(f"no output line starts with {label!r}")


def execute(name: str, tmp_path: Path, fake_key: str, practice_env: dict,
            **parameters) -> tuple[nbformat.NotebookNode, str, float]:
    """Run notebooks/<name> with papermill in a clean kernel; returns (notebook, all text, s)."""
    if not (NB_DIR / name).exists():
        pytest.skip(f"{name} is not written yet")
    if not _kernel_available():
        pytest.fail("No 'python3' Jupyter kernel: run `bash scripts/setup.sh dev` (it installs "
                    "one into .venv with `python -m ipykernel install --sys-prefix`).")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAGGLE_", "KERAS_", "COLAB_", "CG_PRACTICE"))}
    env.update(practice_env)
    env.update({"KAGGLE_USERNAME": FAKE_USER, "KAGGLE_KEY": fake_key,
                "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle_config"),   # no real kaggle.json
                "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub"),
                "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"})
    out = tmp_path / name
    cmd = [sys.executable, "-m", "papermill", str(NB_DIR / name), str(out), "-k", "python3",
           "--cwd", str(tmp_path), "--execution-timeout", "300", "--no-progress-bar",
           "-p", "OFFLINE", "True"]
    for key, value in parameters.items():
        cmd += ["-p", key, str(value)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    seconds = time.perf_counter() - start
    assert out.exists(), f"papermill did not run {name}:\n{proc.stderr[-3000:]}"
    nb = _read(out)
    texts = _outputs(nb)
    errors = [t for t in texts if "Error" in t and proc.returncode != 0]
    assert proc.returncode == 0, (f"{name} failed after {seconds:.0f} s:\n"
                                  f"{(errors or [proc.stderr])[-1][-3000:]}")
    everything = "\n".join(texts)
    raw = out.read_text(encoding="utf-8") + proc.stdout + proc.stderr
    for leak in (fake_key, fake_key[:12], fake_key[-12:]):
        assert leak not in raw, f"{name}: the planted Kaggle key (or part of it) is in the output"
    print(f"{name} {parameters or ''}: {seconds:.0f} s")
    return nb, everything, seconds


BANNER = "OFFLINE PRACTICE MODEL"


def _assert_practice_banner(name: str, text: str) -> None:
    assert BANNER in text and "NOT CodeGemma" in text, \
        f"{name}: the practice model must be announced loudly"


notebooks = pytest.mark.notebooks


@notebooks
def test_01_kaggle_credentials(tmp_path, fake_key, practice_env):
    name = "01_kaggle_credentials.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    assert "…" + fake_key[-4:] in text, "the masked key (last 4 characters) is shown"
    assert "KAGGLE_USERNAME + KAGGLE_KEY" in text, "the winning source is named"
    assert FAKE_USER in text
    assert "TermsNotAcceptedError" in text and "kaggle.com/models/keras/codegemma" in text


@notebooks
@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_02_choose_backend(tmp_path, fake_key, practice_env, backend):
    name = "02_choose_backend.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env, BACKEND=backend)
    assert _line_value(text, "KERAS RUNS ON:") == backend
    assert "BackendAlreadyImportedError" in text, "the too-late switch is demonstrated"
    assert _line_value(text, "DTYPE FOR T4:") == "float16"
    _assert_practice_banner(name, text)
    assert _line_value(text, "COMPLETION ON THIS BACKEND:")


@notebooks
def test_03_load_codegemma(tmp_path, fake_key, practice_env):
    name = "03_load_codegemma.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    from cg_helpers.loading import PRESETS

    assert all(p in text for p in PRESETS), "the five presets are listed"
    assert "Total params" in text, "summary() was shown"
    assert "DOES NOT FIT" in text and "FITS" in text, "the memory plan shows both verdicts"
    _assert_practice_banner(name, text)
    assert _line_value(text, "QUANTIZED:").startswith("int8")
    assert _line_value(text, "QUANTIZED COMPLETION STOPPED BY:") in ("sentinel", "eos", "length")


@notebooks
def test_04_fim_completion(tmp_path, fake_key, practice_env):
    name = "04_fim_completion.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    from cg_helpers.fim import CONTROL_TOKENS

    _assert_practice_banner(name, text)
    # The raw call's pitfalls are shown ...
    assert _line_value(text, "PROMPT ECHOED:") == "True"
    assert _line_value(text, "FIM_MIDDLE KEPT BY PACKER:") == "False"
    assert _line_value(text, "SUFFIX KEPT BY PACKER:") == "False"
    # ... and fixed.
    for label in ("CLEAN COMPLETION:", "CLEAN COMPLETION (long file):",
                  "CLEAN COMPLETION (calculate_age):", "CLEAN COMPLETION (multi-file):"):
        middle = ast.literal_eval(_line_value(text, label))
        assert isinstance(middle, str)
        assert not [t for t in CONTROL_TOKENS if t in middle], f"{label} {middle!r}"
    assert _line_value(text, "CONTROL TOKENS IN COMPLETION:") == "[]"
    assert _line_value(text, "PROMPT TRIMMED:").startswith("True")
    assert _line_value(text, "SUFFIX KEPT:") == "True"
    assert _line_value(text, "STREAM MATCHES COMPLETE:") == "True"
    assert _line_value(text, "SAME SEED, SAME SAMPLE:") == "True"


@notebooks
def test_05_interactive_completion(tmp_path, fake_key, practice_env):
    name = "05_interactive_completion.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    assert "not CodeGemma" in text or "NOT CodeGemma" in text


@notebooks
def test_06_instruct_chat(tmp_path, fake_key, practice_env):
    name = "06_instruct_chat.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    _assert_practice_banner(name, text)
    assert "not instruction-tuned" in text
    assert "<start_of_turn>user\n" in text and "<start_of_turn>model\n" in text
    assert _line_value(text, "CHAT STOP TOKENS:") == "['<end_of_turn>', '<eos>']"
    reply = ast.literal_eval(_line_value(text, "REPLY:"))
    assert "<end_of_turn>" not in reply and "<start_of_turn>" not in reply
    assert _line_value(text, "STOPPED BY:") in ("sentinel", "eos", "length")


@notebooks
def test_07_transformers_comparison(tmp_path, fake_key, practice_env):
    name = "07_transformers_comparison.ipynb"
    _, text, _ = execute(name, tmp_path, fake_key, practice_env)
    from cg_helpers.fim import CONTROL_TOKENS

    _assert_practice_banner(name, text)
    assert "exported" in text.lower()
    assert _line_value(text, "TOKEN IDS MATCH:") == "True"
    middle = ast.literal_eval(_line_value(text, "TRANSFORMERS COMPLETION:"))
    assert not [t for t in CONTROL_TOKENS if t in middle]
    assert _line_value(text, "SAME AS KERAS:") == "True", "greedy float32 output must agree"


@notebooks
def test_08_evaluate_fim(tmp_path, fake_key, practice_env):
    execute("08_evaluate_fim.ipynb", tmp_path, fake_key, practice_env)


@notebooks
def test_09_scale_out(tmp_path, fake_key, practice_env):
    _, text, _ = execute("09_scale_out.ipynb", tmp_path, fake_key, practice_env)
    assert "8 devices: cpu:0" in text                                 # 8 virtual devices
    assert "NOT CodeGemma" in text
    assert "code_gemma_7b_en in float16 on 2 x T4" in text            # memory plan, 2xT4
    assert "TPU v3-8" in text and "weights per device    2.13 GB" in text
    assert "P('model', None, None)" in text                           # weights really split
    assert "gives the same completions as the sharded model: True" in text
