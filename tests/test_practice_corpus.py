"""Training data of the practice model (tools/practice_corpus.py): split, seed filter, FIM rows.

Pure Python + sentencepiece; the tokenizer is the shipped practice model's.
"""

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import practice_corpus as pc  # noqa: E402
from eval_practice_model import SEEDS  # noqa: E402

from cg_helpers.loading import PRACTICE_PRESET_DIR  # noqa: E402

SEQ = 256


@pytest.fixture(scope="module")
def proto():
    path = next((PRACTICE_PRESET_DIR / "assets" / "tokenizer").glob("*.spm"), None)
    if path is None:
        pytest.skip("practice preset not built")
    return path.read_bytes()


@pytest.fixture(scope="module")
def corpus():
    return pc.load_stdlib()


def test_seed_examples_and_near_copies_are_excluded():
    for _, before, after, expected in SEEDS:
        assert pc.is_excluded(before + expected + after)
    near = [
        "import sys\n\n\nif __name__ == '__main__':\n    sys.exit(0)\n",
        "    import sys\n    if __name__ == \"__main__\":\n        sys.exit(0)",
        "def age_of(birth_year):\n    return 2024 - birth_year\n",
        "current_year = 2024\n",
    ]
    assert all(pc.is_excluded(t) for t in near)
    unrelated = ["import sys\nprint(sys.argv)\n", "import os\n\nif __name__ == '__main__':\n"
                 "    os.exit(0)\n", "def age(x):\n    return x\n"]
    assert not any(pc.is_excluded(t) for t in unrelated)


def test_generated_snippets_never_hold_a_seed_example():
    rng = random.Random(0)
    texts = [pc.generated_snippet(rng) for _ in range(3000)]
    assert not any(pc.is_excluded(t) for t in texts)
    compile("\n".join(texts[:50]), "<generated>", "exec")     # it is valid Python


def test_whole_files_are_held_out_and_disjoint(corpus):
    train = {r for r, _ in corpus.train}
    held = {r for r, _ in corpus.heldout}
    assert held and train and not train & held
    assert all(pc.heldout(r) for r in held) and not any(pc.heldout(r) for r in train)
    assert 0.01 < len(held) / (len(held) + len(train)) < 0.1
    assert not any(set(r.split("/")) & {"test", "tests", "idle_test"} for r in train | held)
    assert not any(pc.is_excluded(t) for _, t in corpus.train)


def test_every_split_puts_the_text_back_together(corpus):
    rng = random.Random(1)
    for _ in range(500):
        text = rng.choice(corpus.train)[1][:1200]
        p, m, s = pc.choose_split(text, rng)
        assert p + m + s == text


def _parts(ids):
    """(prefix ids, suffix ids, middle ids) of a PSM row."""
    i_suf, i_mid = ids.index(pc.FIM_SUFFIX), ids.index(pc.FIM_MIDDLE)
    return ids[2:i_suf], ids[i_suf + 1:i_mid], ids[i_mid + 1:-1]


def test_fim_row_layout_and_weights(proto):
    maker = pc.SampleMaker(proto, SEQ, context_weight=0.3, short_frac=0.5)
    prefix, middle, suffix = "def f(x):\n    ", "return x + 1", "\n\nprint(f(2))\n"
    ids, w = maker.fim_row(prefix, middle, suffix, random.Random(0))
    assert ids[:2] == [pc.BOS, pc.FIM_PREFIX] and ids[-1] == pc.FILE_SEPARATOR
    p, s, m = _parts(ids)
    assert maker.sp.decode(p) == prefix and maker.sp.decode(s) == suffix
    assert maker.sp.decode(m) == middle
    assert len(w) == len(ids) - 1 and w[0] == 0.0
    n_mid = len(m) + 1                                   # the middle and its separator
    assert w[-n_mid:] == [1.0] * n_mid and set(w[1:-n_mid]) == {0.3}


def test_spm_row_puts_the_suffix_first(proto):
    maker = pc.SampleMaker(proto, SEQ)
    ids, _ = maker.fim_row("a = 1\n", "b = 2", "\nc = 3\n", random.Random(0), spm_order=True)
    assert ids[:2] == [pc.BOS, pc.FIM_SUFFIX]
    assert ids.index(pc.FIM_PREFIX) < ids.index(pc.FIM_MIDDLE) and ids[-1] == pc.FILE_SEPARATOR


def test_long_files_are_trimmed_near_the_cursor_and_never_lose_the_middle(proto):
    maker = pc.SampleMaker(proto, SEQ)
    prefix = "".join(f"x{i} = {i}\n" for i in range(2000))
    suffix = "".join(f"\ny{i} = {i}" for i in range(2000))
    for seed in range(20):
        ids, _ = maker.fim_row(prefix, "z = 0", suffix, random.Random(seed))
        assert len(ids) <= SEQ + 1
        p, s, m = _parts(ids)
        assert maker.sp.decode(m) == "z = 0"
        assert prefix.endswith(maker.sp.decode(p)) and suffix.startswith(maker.sp.decode(s))


def test_the_row_end_does_not_mark_where_a_line_middle_stops(proto, corpus):
    # If rows were filled to the end, <|file_separator|> would sit at the last position and the
    # model would learn to run on to it (the stop-rate bug of the first training phases).
    maker = pc.SampleMaker(proto, SEQ, short_frac=0.5)
    rng = random.Random(2)
    ends = []
    for _ in range(300):
        text = rng.choice(corpus.train)[1]
        start = rng.randrange(max(1, len(text) - 1200))
        window = text[start:start + 1200]
        span = next((sp for sp in pc._line_spans(window) if sp[0] >= 400
                     and window[sp[0]:sp[1]].strip()), None)
        if span is None:
            continue
        p, m, s = pc.single_line_split(window, span)
        ids, _ = maker.fim_row(p, m, s, rng)
        ends.append(len(ids))
    assert len(ends) > 200
    at_end = sum(e == SEQ + 1 for e in ends) / len(ends)
    assert at_end < 0.05, f"{at_end:.0%} of single-line rows end at the last position"
    assert len(set(ends)) > 20


def test_pack_pads_with_zero_weight(proto):
    maker = pc.SampleMaker(proto, SEQ)
    ids, w = maker.lm_row("print('hi')\n")
    row, wt = maker.pack(ids, w)
    assert row.shape == (SEQ + 1,) and wt.shape == (SEQ,)
    assert list(row[:len(ids)]) == ids and not row[len(ids):].any()
    assert wt[:len(ids) - 1].all() and not wt[len(ids) - 1:].any()
