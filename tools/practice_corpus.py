"""Corpus and FIM sample construction for the offline practice model.

Pure Python + numpy + sentencepiece (no keras). Used by ``tools/train_practice_model.py`` and
``tools/eval_practice_model.py``.

Corpus: the CPython standard library that ships with the interpreter (PSF license), minus the
test suites, plus a little simple generated Python. Files are split into train / held-out by a
hash of their relative path, so whole files are held out.

Seed-example exclusion: a file (or generated snippet) is dropped when it matches
:func:`is_excluded` (``calculate_age``, ``birth_year``, ``current_year``, or an ``import sys``
line followed, blank lines aside, by ``if __name__ == "__main__":`` and ``sys.exit(0)``).

Example:
    >>> is_excluded("def calculate_age(x):\\n    pass\\n")
    True
    >>> is_excluded("import os\\n")
    False
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

PAD, EOS, BOS = 0, 1, 2
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR = 67, 68, 69, 70
STOP_IDS = (EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR)
#: Completion budgets (max_new_tokens) reserved after a full-length prompt in training rows.
RESERVES = (16, 24, 32, 48, 64, 96, 128)

EXCLUDED_WORDS = ("calculate_age", "birth_year", "current_year")
_SEED1 = re.compile(
    r"^[ \t]*import sys[ \t]*\n(?:[ \t]*\n)*[ \t]*if __name__ == ['\"]__main__['\"]:[ \t]*\n"
    r"(?:[ \t]*\n)*[ \t]+sys\.exit\(0\)", re.M)
_TEST_PARTS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "encodings",
               "pydoc_data"}  # test suites; codec tables and help text are not code


def is_excluded(text: str) -> bool:
    """True if ``text`` holds a seed example or a near copy (must not be trained on).

    Example:
        >>> is_excluded('import sys\\n\\nif __name__ == "__main__":\\n    sys.exit(0)\\n')
        True
    """
    return any(w in text for w in EXCLUDED_WORDS) or bool(_SEED1.search(text))


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def heldout(rel: str, fraction: float = 0.04) -> bool:
    """Deterministic whole-file split by a hash of the relative path."""
    h = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


@dataclass
class Corpus:
    train: list[tuple[str, str]]      # (relative path, text)
    heldout: list[tuple[str, str]]
    excluded: list[str]               # relative paths dropped by is_excluded
    python_version: str
    stdlib: str


def load_stdlib(max_bytes: int = 400_000) -> Corpus:
    """Stdlib ``.py`` files (no test suites), split into train and held-out by path hash."""
    root = stdlib_dir()
    train, held, excluded = [], [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if _TEST_PARTS & set(path.relative_to(root).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip() or len(text) > max_bytes:
            continue
        text = text.replace("\r\n", "\n")
        if is_excluded(text):
            excluded.append(rel)
            continue
        (held if heldout(rel) else train).append((rel, text))
    return Corpus(train, held, excluded, sys.version.split()[0], str(root))


# ----------------------------------------------------------------------------- generated Python
_MODULES = {
    "os": ["os.path.join(base, name)", "os.getcwd()", "os.environ.get(\"HOME\")", "os.listdir(path)"],
    "sys": ["sys.argv[1:]", "sys.stdout.write(text)", "sys.path.insert(0, path)", "sys.exit(1)",
            "sys.stderr.write(message)", "sys.version_info"],
    "re": ["re.compile(pattern)", "re.match(pattern, text)", "re.sub(r\"\\s+\", \" \", text)"],
    "json": ["json.loads(text)", "json.dumps(data, indent=2)", "json.load(handle)"],
    "math": ["math.sqrt(value)", "math.pi * radius ** 2", "math.floor(x)", "math.log(n)"],
    "time": ["time.time()", "time.sleep(delay)", "time.monotonic()"],
    "random": ["random.choice(items)", "random.randint(1, 6)", "random.shuffle(items)"],
    "collections": ["collections.Counter(words)", "collections.defaultdict(list)"],
    "itertools": ["itertools.chain(a, b)", "itertools.count()", "itertools.product(xs, ys)"],
    "logging": ["logging.getLogger(__name__)", "logging.basicConfig(level=logging.INFO)"],
    "argparse": ["argparse.ArgumentParser(description=__doc__)"],
    "pathlib": ["pathlib.Path(name).read_text()", "pathlib.Path.cwd()"],
    "subprocess": ["subprocess.run(cmd, check=True)", "subprocess.check_output(args)"],
    "shutil": ["shutil.copy(src, dst)", "shutil.rmtree(path)", "shutil.which(name)"],
    "datetime": ["datetime.date.today()", "datetime.datetime.now()"],
    "functools": ["functools.reduce(add, values)", "functools.partial(func, 1)"],
    "string": ["string.ascii_letters", "string.digits"],
    "csv": ["csv.reader(handle)", "csv.writer(handle)"],
    "socket": ["socket.socket(socket.AF_INET, socket.SOCK_STREAM)"],
    "hashlib": ["hashlib.sha256(data).hexdigest()", "hashlib.md5(data)"],
    "tempfile": ["tempfile.mkdtemp()", "tempfile.NamedTemporaryFile()"],
    "textwrap": ["textwrap.dedent(text)", "textwrap.fill(text, width=70)"],
}
_NOUNS = ["price", "total", "count", "width", "height", "length", "score", "speed", "distance",
          "weight", "amount", "balance", "limit", "offset", "size", "start", "end", "rate",
          "tax", "cost", "income", "expense", "level", "index", "value", "number", "step"]
_OPS = [("-", "difference of"), ("+", "sum of"), ("*", "product of"), ("/", "ratio of")]


def _ident(rng: random.Random) -> str:
    return rng.choice(_NOUNS)


def generated_snippet(rng: random.Random) -> str:
    """One small, simple generated Python file (import + use, or a tiny computing function)."""
    kind = rng.random()
    if kind < 0.45:
        mods = rng.sample(sorted(_MODULES), rng.choice([1, 1, 2, 3]))
        lines = [f"import {m}" for m in mods]
        body = []
        for m in mods:
            for use in rng.sample(_MODULES[m], min(len(_MODULES[m]), rng.choice([1, 2]))):
                var = _ident(rng)
                body.append(rng.choice([f"{var} = {use}", f"print({use})", f"result = {use}"]))
        rng.shuffle(body)
        if rng.random() < 0.5:
            fn = rng.choice(["main", "run", "cli", "setup"])
            text = "\n".join(lines) + "\n\n\ndef " + fn + "():\n" + "".join(
                f"    {b}\n" for b in body) + f'\n\nif __name__ == "__main__":\n    {fn}()\n'
        else:
            text = "\n".join(lines) + "\n\n" + "\n".join(body) + "\n"
        return text
    a, b = rng.sample(_NOUNS, 2)
    res = rng.choice([n for n in _NOUNS if n not in (a, b)])
    op, words = rng.choice(_OPS)
    fn = f"{rng.choice(['compute', 'get', 'calc', 'find'])}_{res}"
    args = [a] if rng.random() < 0.5 else [a, b]
    lines = [f"def {fn}({', '.join(args)}):",
             f'    """Return the {res} as the {words} {a} and {b}."""']
    if len(args) == 1:
        lines.append(f"    {b} = {rng.randint(2, 2000)}")
    lines.append(f"    {res} = {b} {op} {a}" if rng.random() < 0.5 else f"    {res} = {a} {op} {b}")
    lines.append(f"    return {res}")
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.5:
        text += f"\n\nprint({fn}({', '.join(str(rng.randint(1, 99)) for _ in args)}))\n"
    return text


# ----------------------------------------------------------------------------- FIM samples
_BOUNDARY = re.compile(r"(?<=[\s(\[{.,=:])(?=\S)|\b")


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) char offsets of each line, end excluding the newline."""
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def single_line_split(text: str, line: tuple[int, int]) -> tuple[str, str, str]:
    """Cursor after the indentation; middle = rest of the line; suffix starts at its newline."""
    start, end = line
    indent = len(text[start:end]) - len(text[start:end].lstrip())
    return text[:start + indent], text[start + indent:end], text[end:]


def choose_split(text: str, rng: random.Random) -> tuple[str, str, str]:
    """A (prefix, middle, suffix) split biased toward single-line middles."""
    spans = _line_spans(text)
    useful = [s for s in spans if text[s[0]:s[1]].strip()]
    if not useful:
        cut = rng.randint(0, len(text))
        return text[:cut], "", text[cut:]
    r = rng.random()
    line = rng.choice(useful)
    start, end = line
    if r < 0.50:                                   # whole line after indentation
        return single_line_split(text, line)
    if r < 0.70:                                   # rest of the line from a token boundary
        cuts = [m.start() for m in _BOUNDARY.finditer(text, start, end) if start < m.start() < end]
        cut = rng.choice(cuts) if cuts else start
        return text[:cut], text[cut:end], text[end:]
    if r < 0.78:                                   # whole line including indentation+newline
        return text[:start], text[start:end + 1], text[end + 1:]
    if r < 0.86:                                   # part of a line ending at a boundary
        cuts = [m.start() for m in _BOUNDARY.finditer(text, start, end) if start < m.start() <= end]
        if len(cuts) >= 2:
            a, b = sorted(rng.sample(cuts, 2))
            return text[:a], text[a:b], text[b:]
        return single_line_split(text, line)
    # multi-line block: 2-6 lines, cursor after the first line's indentation
    i = spans.index(line)
    j = min(len(spans) - 1, i + rng.randint(1, 5))
    s0 = start + len(text[start:end]) - len(text[start:end].lstrip())
    return text[:s0], text[s0:spans[j][1]], text[spans[j][1]:]


class SampleMaker:
    """Turns (prefix, middle, suffix) text into fixed-length token rows with loss weights."""

    def __init__(self, proto: bytes, seq_len: int, context_weight: float = 0.2,
                 short_frac: float = 0.75):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.seq_len = seq_len
        self.context_weight = context_weight
        self.short_frac = short_frac

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text) if text else []

    def fim_prompt_ids(self, prefix: str, suffix: str, budget: int,
                       rng: random.Random | None = None) -> list[int]:
        """``<bos><|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>`` within ``budget`` tokens.

        Keeps the text nearest the cursor: prefix trimmed from the left, suffix from the right.
        """
        p, s = self.encode(prefix), self.encode(suffix)
        room = budget - 4
        if len(p) + len(s) > room:
            share = 0.6 if rng is None else rng.uniform(0.4, 0.8)
            sp_ = min(len(s), max(room - len(p), int(room * (1 - share))))
            pp = room - sp_
            p, s = p[len(p) - pp:] if pp > 0 else [], s[:sp_]
        return [BOS, FIM_PREFIX] + p + [FIM_SUFFIX] + s + [FIM_MIDDLE]

    def fim_row(self, prefix: str, middle: str, suffix: str, rng: random.Random,
                spm_order: bool = False):
        m = self.encode(middle)[: self.seq_len // 3] + [FILE_SEPARATOR]
        most = self.seq_len + 1 - len(m)
        # Where <|fim_middle|> lands must not tell where the middle ends: rows filled to the end
        # teach the model to stop at the last position, and at inference (a prompt trimmed to
        # context - max_new_tokens) it then runs on past the line to reach it. So the prompt
        # either gets a random shorter budget or fills the row up to a reserved completion
        # budget, as Completer does, and the middle ends anywhere inside that reserve.
        if rng.random() < self.short_frac:
            budget = rng.randint(min(24, most), most)
        else:
            reserve = max(len(m), rng.choice(RESERVES))
            budget = max(min(24, most), self.seq_len + 1 - reserve)
        if spm_order:
            p, s = self.encode(prefix), self.encode(suffix)
            room = budget - 4
            while len(p) + len(s) > room:
                if len(p) > len(s):
                    p = p[len(p) - max(room - len(s), room // 2):]
                else:
                    s = s[:max(room - len(p), room // 2)]
            head = [BOS, FIM_SUFFIX] + s + [FIM_PREFIX] + p + [FIM_MIDDLE]
        else:
            head = self.fim_prompt_ids(prefix, suffix, budget, rng)
        ids = head + m
        w = [self.context_weight] * (len(head) - 1) + [1.0] * len(m)
        w[0] = 0.0  # predicting <|fim_prefix|> after <bos> teaches nothing
        return ids, w

    def lm_row(self, text: str):
        ids = [BOS] + self.encode(text)[: self.seq_len]
        return ids, [1.0] * (len(ids) - 1)

    def pack(self, ids: list[int], w: list[float]):
        import numpy as np

        n = self.seq_len + 1
        row = np.zeros(n, np.int32)
        wt = np.zeros(self.seq_len, np.float32)
        ids = ids[:n]
        row[: len(ids)] = ids
        wt[: len(ids) - 1] = w[: len(ids) - 1]
        return row, wt


def write_data_md(out_dir: str | Path, corpus_json: dict, args: dict) -> Path:
    """Write DATA.md (sources, version, license, split, filters, file lists) into ``out_dir``."""
    train, held, excl = corpus_json["train"], corpus_json["heldout"], corpus_json["excluded"]
    lines = [
        "# Training data of the offline practice model",
        "",
        "## Sources",
        f"- **CPython {corpus_json['python_version']} standard library** as shipped with the "
        f"interpreter that trained the model (`{corpus_json['stdlib']}`). License: the "
        "Python Software Foundation License Version 2 (PSF-2.0), see `LICENSE.txt` in that "
        "directory or <https://docs.python.org/3/license.html>.",
        "  - Included: every `*.py` file below the stdlib directory, except the test suites "
        "(any path part `test`, `tests`, `idle_test`), `site-packages`, `encodings/` (codec "
        "tables) and `pydoc_data/` (help text), and files over 400 kB or not UTF-8.",
        f"  - {len(train)} files for training, {len(held)} held out (listed below).",
        "- **Simple generated Python** (`generated_snippet` in `tools/practice_corpus.py`, about "
        f"{args.get('generated_frac', 0.08):.0%} of samples): `import m` lines followed by "
        "typical uses of `m` (22 stdlib modules), and tiny two-variable arithmetic functions "
        "(`def compute_total(price, tax): ...`). Written for this project, no license issue.",
        "",
        "## Held-out split",
        "Whole files: a file is held out when the first 32 bits of SHA-256 of its path relative "
        "to the stdlib directory, divided by 2^32-1, is below 0.04 (`heldout()` in "
        "`tools/practice_corpus.py`). Evaluation (`tools/eval_practice_model.py`) only uses "
        "held-out files.",
        "",
        "## Sample format",
        "Each training row is one sample of at most "
        f"{args.get('seq_len')} tokens, right-padded with `<pad>`:",
        "- FIM, PSM order (about "
        f"{1 - args.get('lm_frac', 0) - args.get('spm_frac', 0):.0%}): "
        "`<bos><|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}<|file_separator|>`;"
        " each part tokenized on its own, as the tokenizer splits a prompt at control tokens. "
        "The prefix is trimmed from the left and the suffix from the right (text nearest the "
        "cursor kept). Middles: 50 % the rest of a line after its indentation, 20 % the rest of "
        "a line from a token boundary, 8 % a whole line with its newline, 8 % a span inside a "
        "line, 14 % 2-6 lines.",
        f"- FIM, SPM order (about {args.get('spm_frac', 0):.0%}): "
        "`<bos><|fim_suffix|>{suffix}<|fim_prefix|>{prefix}<|fim_middle|>{middle}<|file_separator|>`.",
        f"- Plain left-to-right (about {args.get('lm_frac', 0):.0%}): `<bos>{{code}}`.",
        f"- Loss weights: 1.0 on the middle and the `<|file_separator|>` after it, "
        f"{args.get('context_weight')} on the prefix/suffix tokens, 1.0 on plain samples.",
        f"- Row lengths: {args.get('short_frac', 0.75):.0%} of FIM prompts get a random budget "
        "of 24 tokens up to the row; the rest fill the row up to a reserved completion budget "
        f"({', '.join(map(str, RESERVES))} tokens, like `max_new_tokens`), so the position of "
        "`<|file_separator|>` does not tell the model where the middle ends.",
        "- These are the settings of the last training phase; the model card lists the phases.",
        "",
        "## The tutorial's seed examples are not in the data",
        "The two examples used to judge the model (`import ` + `if __name__ == \"__main__\":` "
        "`sys.exit(0)` -> `sys`; the `calculate_age` body -> `age = current_year - birth_year`) "
        "and near copies are filtered out by `is_excluded()` in `tools/practice_corpus.py`, at "
        "two levels: (1) whole files are dropped, and (2) every sampled window and every "
        "generated snippet is checked again before it becomes a training row. A text is "
        "excluded when it contains `calculate_age`, `birth_year` or `current_year`, or an "
        "`import sys` line followed (blank lines aside) by an `if __name__ == \"__main__\":` "
        "line and a `sys.exit(0)` line.",
        f"- Files dropped by this filter in this run: {len(excl)} "
        f"({', '.join(excl) if excl else 'none: no stdlib file holds them'}).",
        "- The generated snippets never use those names (their name lists hold none of them).",
        "",
        f"## Training files ({len(train)})",
        "", ", ".join(f"`{r}`" for r in train), "",
        f"## Held-out files ({len(held)})",
        "", ", ".join(f"`{r}`" for r in held), "",
    ]
    path = Path(out_dir) / "DATA.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
