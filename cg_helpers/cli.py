"""Command line: ``python -m cg_helpers complete|evaluate|presets``.

Examples::

    python -m cg_helpers complete --before 'import ' --after $'\\nif __name__ == "__main__":\\n    sys.exit(0)'
    python -m cg_helpers complete --file app.py --cursor 12:5 --stream
    python -m cg_helpers complete --file examples/seed_example.py          # <CURSOR> marker
    python -m cg_helpers complete --preset code_gemma_2b_en --before 'def add(a, b):\\n    return '
    python -m cg_helpers evaluate --preset code_gemma_2b_en --split single-line

Without ``--preset`` the offline practice model is used (and the CLI says so). The completion
goes to stdout; the notice and one line of timing go to stderr. Bad arguments exit with code 2
and a message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from . import fim

__all__ = ["main", "build_parser", "cursor_split"]

BACKENDS = ("jax", "tensorflow", "torch")


class UsageError(Exception):
    """A problem with the command line (exit code 2)."""


def cursor_split(text: str, cursor: str) -> tuple[str, str]:
    """Split ``text`` at ``LINE:COL`` (both 1-based, COL in characters).

    Example:
        >>> cursor_split("import \\nx = 1\\n", "1:8")
        ('import ', '\\nx = 1\\n')
    """
    try:
        line_s, col_s = cursor.split(":")
        line, col = int(line_s), int(col_s)
    except ValueError:
        raise UsageError(f"--cursor must be LINE:COL with 1-based numbers, e.g. 3:5; got {cursor!r}")
    lines = text.splitlines(keepends=True) or [""]
    if text.endswith(("\n", "\r")):
        lines.append("")
    if not 1 <= line <= len(lines):
        raise UsageError(f"--cursor line {line} is outside the file (1..{len(lines)}).")
    content = lines[line - 1].rstrip("\r\n")
    if not 1 <= col <= len(content) + 1:
        raise UsageError(f"--cursor column {col} is outside line {line} (1..{len(content) + 1}).")
    offset = sum(len(x) for x in lines[:line - 1]) + col - 1
    return text[:offset], text[offset:]


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help="CodeGemma preset (e.g. code_gemma_2b_en, needs Kaggle credentials) or a "
                        "local preset directory. Default: the offline practice model.")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="Keras backend (default: $KERAS_BACKEND, else jax if installed, else tensorflow).")
    p.add_argument("--dtype", default=None,
                   help="Weight dtype, e.g. float16 on a T4, bfloat16 on A100/TPU (default: the preset's).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cg_helpers",
        description="Fill-in-the-middle code completion with CodeGemma (KerasHub).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("complete", help="complete code at a cursor",
                       description="Complete code between --before and --after, or at a cursor in --file.")
    src = c.add_argument_group("input (either --before/--after or --file)")
    src.add_argument("--before", help="code before the cursor")
    src.add_argument("--after", default=None, help="code after the cursor (default: empty)")
    src.add_argument("--file", type=Path, help="a source file; the cursor is --cursor or a marker in it")
    src.add_argument("--cursor", help="LINE:COL in --file, 1-based (default: the marker)")
    src.add_argument("--marker", default=fim.DEFAULT_CURSOR,
                     help=f"cursor marker inside --file (default: {fim.DEFAULT_CURSOR})")
    c.add_argument("--path", default=None, help="file path to show the model (default: --file's name)")
    c.add_argument("--context", type=Path, action="append", default=[],
                   help="another file to give as context (repeatable)")
    _add_model_args(c)
    c.add_argument("--max-new-tokens", type=_positive_int, default=64)
    c.add_argument("--stream", action="store_true", help="print the completion as it is generated")
    c.add_argument("--strip-sentinels", action="store_true",
                   help="drop control tokens such as <|fim_middle|> typed in the code (default: error)")
    c.add_argument("--json", action="store_true", help="print the whole result as JSON")

    e = sub.add_parser("evaluate", help="HumanEval infilling benchmark (pass@1)")
    _add_model_args(e)
    try:
        from . import evaluation
    except ImportError:  # pragma: no cover - the evaluation module is optional
        evaluation = None
    if evaluation is not None and hasattr(evaluation, "add_arguments"):
        evaluation.add_arguments(e)

    sub.add_parser("presets", help="list the CodeGemma presets and their sizes")
    return parser


def _choose_backend(name: str | None) -> str:
    name = name or os.environ.get("KERAS_BACKEND")
    if not name:
        import importlib.util
        name = "jax" if importlib.util.find_spec("jax") else "tensorflow"
    from .backend import use_backend
    use_backend(name)
    return name


def _load(args: argparse.Namespace):
    from .completion import Completer
    from .loading import load_model

    _choose_backend(args.backend)
    if args.preset is None:
        print("Using the offline practice model (a small model trained here, NOT CodeGemma). "
              "Pass --preset code_gemma_2b_en for the real model.", file=sys.stderr)
    try:
        loaded = load_model(args.preset, dtype=args.dtype)
    except (ValueError, FileNotFoundError, TypeError) as err:
        if isinstance(err, FileNotFoundError) or "Unknown preset" in str(err):
            raise UsageError(str(err))
        raise
    return Completer.from_loaded(loaded)


def _read_input(args: argparse.Namespace) -> tuple[str, str, str | None]:
    if args.file is not None:
        if args.before is not None or args.after is not None:
            raise UsageError("Give either --file or --before/--after, not both.")
        try:
            text = args.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"--file {args.file} does not exist.")
        except UnicodeDecodeError:
            raise UsageError(f"--file {args.file} is not UTF-8 text.")
        if args.cursor:
            before, after = cursor_split(text, args.cursor)
        else:
            try:
                before, after = fim.split_at_cursor(text, args.marker)
            except fim.CursorError as err:
                raise UsageError(f"{err} (or pass --cursor LINE:COL)")
        return before, after, args.path or args.file.name
    if args.before is None:
        raise UsageError("Give the code before the cursor with --before (and --after), or --file.")
    if args.cursor:
        raise UsageError("--cursor needs --file.")
    return args.before, args.after or "", args.path


def _complete(args: argparse.Namespace) -> int:
    before, after, path = _read_input(args)
    context = []
    for p in args.context:
        try:
            context.append(fim.ContextFile(p.name, p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UsageError(f"--context {p} does not exist.")
    on_sentinel = "strip" if args.strip_sentinels else "error"
    # Check the input before the (slow) model load.
    fim.fim_prompt(before, after, path, context_files=context, on_sentinel=on_sentinel)
    completer = _load(args)
    kwargs = dict(max_new_tokens=args.max_new_tokens, path=path, context_files=context,
                  on_sentinel=on_sentinel)
    if args.stream and not args.json:
        stream = completer.stream(before, after, **kwargs)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        result = stream.result
        sys.stdout.write("\n")
    else:
        result = completer.complete(before, after, **kwargs)
        if args.json:
            data = asdict(result)
            data["tokens_per_second"] = result.tokens_per_second
            print(json.dumps(data, indent=2))
        else:
            print(result.middle)
    print(result.summary(), file=sys.stderr)
    return 0


def _presets() -> int:
    from .loading import PRESETS

    print(f"{'preset':32} {'kind':9} {'params':>8} {'bf16/fp16':>10} {'int8':>8} {'int4':>8}")
    for p in PRESETS.values():
        gb = lambda d: f"{p.weight_bytes(d) / 1e9:.1f} GB"  # noqa: E731
        print(f"{p.name:32} {p.kind:9} {p.params / 1e9:7.2f}B {gb('bfloat16'):>10} "
              f"{gb('int8'):>8} {gb('int4'):>8}")
    print("Accept the terms once per Kaggle account, e.g. "
          f"{PRESETS['code_gemma_2b_en'].model_page}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from . import evaluation

    completer = _load(args)
    return int(evaluation.cli(args, completer))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "complete":
            return _complete(args)
        if args.command == "presets":
            return _presets()
        if args.command == "evaluate":
            return _evaluate(args)
    except (UsageError, fim.FIMError, TypeError) as err:
        hint = " (on the command line: --strip-sentinels)" if isinstance(err, fim.SentinelError) else ""
        print(f"{parser.prog} {args.command}: error: {err}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - last resort: an actionable line, not a traceback
        message = str(err)
        try:
            from .credentials import actionable_error
            message = str(actionable_error(err, preset=getattr(args, "preset", None)))
        except Exception:  # noqa: BLE001
            pass
        print(f"{parser.prog} {args.command}: {type(err).__name__}: {message}", file=sys.stderr)
        if os.environ.get("CG_DEBUG"):
            raise
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2
