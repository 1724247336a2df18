"""Build, strip and check the notebooks in ``notebooks/``.

The committed ``.ipynb`` files are the source of truth. This tool helps write and keep them clean:

* ``build SRC.py [SRC.py ...] --out notebooks/`` - turn a "percent" Python file into a notebook
  (``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines start with ``#``,
  ``# %% tags=["parameters"]`` a tagged cell). The notebook gets the source file's name.
* ``export NB.ipynb [...] --out DIR`` - the reverse, to edit a notebook as a Python file.
* ``strip NB.ipynb [...]`` - remove outputs, execution counts and per-run metadata, and set
  the ``python3`` kernelspec (what the test suite requires of committed notebooks).
* ``check NB.ipynb [...]`` - exit 1 and name the files that ``strip`` would change.

Example::

    python tools/notebooks.py strip notebooks/*.ipynb
    python tools/notebooks.py check notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
CELL_MARK = re.compile(r"^# %%(?P<rest>.*)$")
TAGS = re.compile(r"tags\s*=\s*(\[[^\]]*\])")


def parse_percent(text: str) -> list[tuple[str, str, list[str]]]:
    """``(cell_type, source, tags)`` for each cell of a percent-format file.

    Example:
        >>> parse_percent("# %% [markdown]\\n# # Title\\n# %%\\nx = 1\\n")
        [('markdown', '# Title', []), ('code', 'x = 1', [])]
    """
    cells: list[tuple[str, list[str], list[str]]] = []
    for line in text.splitlines():
        m = CELL_MARK.match(line)
        if m:
            rest = m.group("rest")
            kind = "markdown" if "[markdown]" in rest else "code"
            t = TAGS.search(rest)
            cells.append((kind, [], json.loads(t.group(1)) if t else []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"Text before the first '# %%' marker: {line!r}")
    out = []
    for kind, lines, tags in cells:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] if ln.startswith("#") else ln
                     for ln in lines]
        source = "\n".join(lines).strip("\n")
        out.append((kind, source, tags))
    return out


def build(src: Path) -> nbformat.NotebookNode:
    """A stripped notebook from a percent-format file."""
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in parse_percent(src.read_text(encoding="utf-8")):
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        if tags:
            cell.metadata["tags"] = tags
        cell["id"] = f"cell-{len(nb.cells):02d}"   # stable ids: small diffs on rebuild
        nb.cells.append(cell)
    return strip(nb)


def export(nb: nbformat.NotebookNode) -> str:
    """The notebook as a percent-format Python file (outputs dropped)."""
    parts = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        tag_text = f" tags={json.dumps(tags)}" if tags else ""
        if cell.cell_type == "markdown":
            body = "\n".join(("# " + ln) if ln else "#" for ln in cell.source.splitlines())
            parts.append(f"# %% [markdown]{tag_text}\n{body}")
        else:
            parts.append(f"# %%{tag_text}\n{cell.source}")
    return "\n\n".join(parts) + "\n"


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts, per-run metadata and ids noise; set the kernelspec."""
    for i, cell in enumerate(nb.cells):
        keep = {k: v for k, v in cell.get("metadata", {}).items() if k in ("tags",)}
        cell["metadata"] = keep
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        if not cell.get("id"):
            cell["id"] = f"cell-{i:02d}"   # nbformat >= 4.5 requires one per cell
    nb.metadata = nbformat.NotebookNode({
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
    })
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _dump(nb: nbformat.NotebookNode) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="percent-format .py -> stripped .ipynb")
    b.add_argument("sources", nargs="+", type=Path)
    b.add_argument("--out", type=Path, default=Path("notebooks"))
    e = sub.add_parser("export", help=".ipynb -> percent-format .py")
    e.add_argument("notebooks", nargs="+", type=Path)
    e.add_argument("--out", type=Path, required=True)
    for name in ("strip", "check"):
        p = sub.add_parser(name)
        p.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    if args.command == "build":
        args.out.mkdir(parents=True, exist_ok=True)
        for src in args.sources:
            nb = build(src)
            nbformat.validate(nb)
            target = args.out / (src.stem + ".ipynb")
            target.write_text(_dump(nb), encoding="utf-8")
            print(f"wrote {target} ({len(nb.cells)} cells)")
        return 0
    if args.command == "export":
        args.out.mkdir(parents=True, exist_ok=True)
        for path in args.notebooks:
            target = args.out / (path.stem + ".py")
            target.write_text(export(nbformat.read(path, as_version=4)), encoding="utf-8")
            print(f"wrote {target}")
        return 0
    dirty = []
    for path in args.notebooks:
        original = path.read_text(encoding="utf-8")
        clean = _dump(strip(nbformat.reads(original, as_version=4)))
        if clean != original:
            dirty.append(path)
            if args.command == "strip":
                path.write_text(clean, encoding="utf-8")
                print(f"stripped {path}")
    if args.command == "check" and dirty:
        print("Not stripped (run `python tools/notebooks.py strip` on them):",
              *map(str, dirty), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
