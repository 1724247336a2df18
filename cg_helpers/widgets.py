"""Interactive fill-in-the-middle completion in a notebook (ipywidgets 8).

:func:`build_ui` wraps any completer (a :class:`cg_helpers.completion.Completer`, or a fake with
the same ``stream`` method) in a small app: code before and after the cursor (or one area with a
cursor marker), max new tokens, sampling, optional context files, Complete / Stop, a result view
where the inserted code is highlighted, a status line with the numbers that matter, errors in
words a person can act on, and the last few completions to re-insert.

**Streaming and the kernel.** A click handler that loops in the kernel's main thread blocks the
kernel: the Stop click could not be processed until the completion ends. So by default the
completion runs in a background thread and updates the widgets from there (ipywidgets sends
those updates from any thread). ``run_in_thread=False`` runs it inside the click instead: simpler
and deterministic, but Stop then has no effect. Tests and scripts that click from code call
:meth:`CompletionUI.wait` after :meth:`CompletionUI.complete`.

Results are written into widget values (never printed into an ``Output``), so the state is the
same in a browser, under papermill and in plain pytest.

Example:
    >>> ui = build_ui(completer)                               # doctest: +SKIP
    >>> ui                                                     # doctest: +SKIP  (shows the app)
    >>> ui.before.value, ui.after.value = "def add(a, b):\\n    return ", "\\n"  # doctest: +SKIP
    >>> ui.complete(); ui.wait(); print(ui.status_text)         # doctest: +SKIP
"""

from __future__ import annotations

import html
import re
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from . import fim
from .completion import CompletionResult, Sampling
from .fim import ContextFile

__all__ = ["CompletionUI", "HistoryEntry", "build_ui", "render_completion", "format_status",
           "explain_error", "PRACTICE_BADGE"]

#: Shown next to the model name whenever ``completer.is_practice`` is true.
PRACTICE_BADGE = "offline practice model — not CodeGemma"

_CSS = """<style>
.cg-ui { max-width: 980px; }
.cg-ui .cg-code, .cg-ui .cg-result { min-width: 0; }
.cg-ui .cg-result .widget-html-content { min-width: 0; }
.cg-ui .cg-code textarea { font-family: var(--jp-code-font-family, monospace); font-size: 13px;
  line-height: 1.35; white-space: pre; tab-size: 4; }
.cg-ui .cg-label { font-weight: 600; margin: 6px 0 0 2px; }
.cg-ui .cg-view { font-family: var(--jp-code-font-family, monospace); font-size: 13px;
  line-height: 1.35; white-space: pre; tab-size: 4; overflow: auto; max-height: 420px;
  border: 1px solid #c8c8c8; border-radius: 4px; padding: 8px 10px; background: #fbfbfb;
  color: #1e1e1e; margin: 0; min-height: 2.7em; }
.cg-ui .cg-middle { background: #c9f2c7; color: #0b3d0b; border-bottom: 2px solid #3c9a3c; }
.cg-ui .cg-empty { color: #888; font-style: italic; background: #eee; }
.cg-ui .cg-caret { color: #3c9a3c; }
.cg-ui .cg-elided { color: #888; font-style: italic; }
.cg-ui .cg-badge { display: inline-block; background: #fff1c2; color: #6b4e00; border: 1px solid
  #e0b400; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.cg-ui .cg-status { font-size: 13px; color: #333; line-height: 1.5; }
.cg-ui .cg-status b { color: #111; }
.cg-ui .cg-error { border-left: 4px solid #c9302c; background: #fdecea; color: #611a15;
  padding: 6px 10px; white-space: pre-wrap; font-size: 13px; }
.cg-ui .cg-note { color: #555; font-size: 12px; }
</style>"""


@dataclass(frozen=True)
class HistoryEntry:
    """One finished completion: the user's full text around the cursor and what was inserted."""

    before: str
    middle: str
    after: str
    result: CompletionResult | None

    def label(self, number: int) -> str:
        shown = self.middle.replace("\n", "⏎").replace("\t", "⇥")
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        extra = (f" — {self.result.stop_reason}, {self.result.generated_tokens} tokens"
                 if self.result is not None else "")
        return f"{number}. “{shown}”{extra}"


def _elide(text: str, keep_lines: int, *, from_end: bool) -> tuple[str, int]:
    """Keep the ``keep_lines`` lines nearest the cursor; return (kept, lines dropped)."""
    lines = text.splitlines(keepends=True)
    if len(lines) <= keep_lines:
        return text, 0
    kept = lines[-keep_lines:] if from_end else lines[:keep_lines]
    return "".join(kept), len(lines) - keep_lines


def render_completion(before: str, middle: str, after: str, *, running: bool = False,
                      context_lines: int = 40) -> str:
    """HTML of the code with ``middle`` highlighted between ``before`` and ``after``.

    Monospace, whitespace kept (``white-space: pre``), all text HTML-escaped. Only the
    ``context_lines`` lines nearest the cursor are shown on each side.

    Example:
        >>> "<span class=\\"cg-middle\\"" in render_completion("x = ", "1 < 2", "\\n")
        True
        >>> "1 &lt; 2" in render_completion("x = ", "1 < 2", "\\n")
        True
    """
    esc = lambda s: html.escape(s, quote=False)  # noqa: E731
    shown_before, dropped_before = _elide(before, context_lines, from_end=True)
    shown_after, dropped_after = _elide(after, context_lines, from_end=False)
    parts = ['<pre class="cg-view">']
    if dropped_before:
        parts.append(f'<span class="cg-elided">… {dropped_before} lines above …</span>\n')
    parts.append(esc(shown_before))
    if middle:
        parts.append(f'<span class="cg-middle" title="inserted by the model">{esc(middle)}</span>')
    elif not running:
        parts.append('<span class="cg-empty" title="the model inserted nothing">⟨nothing '
                     'inserted⟩</span>')
    if running:
        parts.append('<span class="cg-caret">▌</span>')
    parts.append(esc(shown_after))
    if dropped_after:
        parts.append(f'\n<span class="cg-elided">… {dropped_after} lines below …</span>')
    parts.append("</pre>")
    return "".join(parts)


def _model_html(completer: Any) -> str:
    if completer is None:
        return '<b>no model loaded</b>'
    name = html.escape(str(getattr(completer, "name", "model")))
    label = html.escape(str(getattr(completer, "label", name)), quote=True)
    badge = (f' <span class="cg-badge">{PRACTICE_BADGE}</span>'
             if getattr(completer, "is_practice", False) else "")
    return f'<b title="{label}">{name}</b>{badge}'


def format_status(result: CompletionResult, completer: Any = None) -> str:
    """The status line (HTML) for a finished completion: model, tokens, stop reason, timings.

    Example:
        >>> format_status(result)                   # doctest: +SKIP
        '<b>code_gemma_2b_en</b> · 23 prompt tokens · 4 generated · stop: sentinel …'
    """
    model = _model_html(completer) if completer is not None else (
        f"<b>{html.escape(result.model_name)}</b>"
        + (f' <span class="cg-badge">{PRACTICE_BADGE}</span>' if result.is_practice else ""))
    stop = html.escape(result.stop_reason)
    if result.stop_token:
        stop += f" ({html.escape(result.stop_token)})"
    first = (f"{result.first_piece_seconds * 1000:.0f} ms"
             if result.first_piece_seconds is not None else "–")
    items = [
        model,
        f"<b>{result.prompt_tokens}</b> prompt tokens",
        f"<b>{result.generated_tokens}</b> generated tokens",
        f"stop: <b>{stop}</b>",
        f"first piece {first}",
        f"total {result.seconds:.2f} s",
        f"{result.tokens_per_second:.1f} tokens/s",
    ]
    line = " · ".join(items)
    if getattr(result, "truncated", False):
        line += (f'<br><span class="cg-note">The prompt was trimmed to fit the context: '
                 f"{result.dropped_before_chars} characters dropped far above the cursor, "
                 f"{result.dropped_after_chars} far below.</span>")
    return f'<div class="cg-status">{line}</div>'


def explain_error(err: BaseException | None, *,
                  max_new_tokens: int | None = None) -> tuple[str, str]:
    """``(title, advice)`` for an error, in words a person can act on. ``None`` = no model.

    Example:
        >>> explain_error(None)[0]
        'No model loaded'
    """
    kept = " Your code is kept."
    if err is None:
        return ("No model loaded",
                "Run the loading cell first (load_model(...), then Completer.from_loaded(...)) "
                "and pass the completer to build_ui(completer), or call "
                "ui.set_completer(completer)." + kept)
    if isinstance(err, fim.SentinelError):
        return ("Control token in your code",
                f"The {err.field} contains {err.token!r} at character {err.offset}. The model "
                "would read it as an instruction, not as code. Delete it (in a string you can "
                f"split it, e.g. {err.token[:3]!r} + {err.token[3:]!r}), or tick "
                "“Drop control tokens from my code” under Options and click Complete again."
                + kept)
    if isinstance(err, fim.CursorError):
        return ("Cursor marker", f"{err} Or switch to “Two areas”.{kept}")
    if isinstance(err, fim.BudgetError):
        tokens = f" (now {max_new_tokens})" if max_new_tokens else ""
        return ("Too long for the model's context",
                f"{err} Lower “max new tokens”{tokens}, remove or shorten context files, or "
                "shorten the code." + kept)
    if isinstance(err, (ValueError, TypeError)):
        return ("Invalid setting", f"{err}{kept}")
    return (f"The completion failed ({type(err).__name__})",
            f"{err}{kept} Fix the cause and click Complete again; the full traceback is in "
            "ui.last_traceback.")


class CompletionUI:
    """The completion app; build it with :func:`build_ui`. Display it like a widget.

    Widgets you can read and set from code (tests, notebooks): ``before``, ``after``, ``code``
    (one-area mode), ``mode`` (``"split"`` or ``"marker"``), ``max_new_tokens``, ``method``,
    ``temperature``, ``top_k``, ``top_p``, ``seed``, ``path``, ``strip_controls``,
    ``complete_button``, ``stop_button``, ``warmup_button``, ``result`` (HTML), ``status``
    (HTML), ``message`` (HTML errors), ``history_select``, ``insert_button``.

    Example:
        >>> ui = CompletionUI(completer)                 # doctest: +SKIP
        >>> ui.complete(); ui.wait()                     # doctest: +SKIP
    """

    def __init__(self, completer: Any, *, max_new_tokens: int = 64, run_in_thread: bool = True,
                 cursor_marker: str = fim.DEFAULT_CURSOR, history_size: int = 5,
                 before: str = "", after: str = "", update_interval: float = 0.05):
        self.completer = completer
        self.run_in_thread = run_in_thread
        self.cursor_marker = cursor_marker
        self.history_size = history_size
        self.update_interval = update_interval
        self.history: list[HistoryEntry] = []
        self.last_result: CompletionResult | None = None
        self.last_error: BaseException | None = None
        self.last_traceback: str = ""
        self.runs = 0                 # completions started
        self.ignored_clicks = 0       # clicks while one was already running
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._switching = False
        self._context_rows: list[tuple[W.Text, W.Textarea, W.Box]] = []

        # width "auto" stretches to the column; "100%" would overflow by the widget margins.
        def full() -> W.Layout:
            return W.Layout(width="auto")

        # --- code entry
        self.before = W.Textarea(value=before, rows=8, layout=full(),
                                 placeholder="Code before the cursor…")
        self.after = W.Textarea(value=after, rows=5, layout=full(),
                                placeholder="Code after the cursor (may be empty)…")
        self.code = W.Textarea(value="", rows=12, layout=full(),
                               placeholder=f"Your code, with {cursor_marker} where the "
                                           "completion goes…")
        for area, cls in ((self.before, "cg-before"), (self.after, "cg-after"),
                          (self.code, "cg-single")):
            area.add_class("cg-code")
            area.add_class(cls)
        self.mode = W.ToggleButtons(
            options=[("Two areas", "split"), (f"One area with {cursor_marker}", "marker")],
            value="split", style={"button_width": "auto"})
        self.mode.observe(self._on_mode, names="value")
        self._split_box = W.VBox([self._label("Before the cursor"), self.before,
                                  self._label("After the cursor"), self.after])
        self._marker_box = W.VBox([self._label(f"Code with one {cursor_marker} marker"),
                                   self.code], layout=W.Layout(display="none"))

        # --- generation controls
        top = self._max_tokens_for(completer)
        self.max_new_tokens = W.IntSlider(value=min(max_new_tokens, top), min=1, max=top,
                                          description="Max new tokens",
                                          style={"description_width": "initial"},
                                          layout=W.Layout(width="360px"))
        self.method = W.ToggleButtons(options=[("greedy", "greedy"), ("top-k", "top_k"),
                                               ("top-p", "top_p")], value="greedy",
                                      tooltips=["always the most likely token",
                                                "sample from the k most likely tokens",
                                                "sample from the smallest set with total "
                                                "probability p"],
                                      style={"button_width": "70px"},
                                      layout=W.Layout(width="auto"))
        self.temperature = W.FloatSlider(value=0.8, min=0.05, max=2.0, step=0.05,
                                         description="Temperature",
                                         layout=W.Layout(width="300px"))
        self.top_k = W.IntSlider(value=40, min=1, max=200, description="k",
                                 layout=W.Layout(width="260px"))
        self.top_p = W.FloatSlider(value=0.9, min=0.05, max=1.0, step=0.05, description="p",
                                   layout=W.Layout(width="260px"))
        self.seed = W.IntText(value=0, description="Seed", layout=W.Layout(width="160px"))
        self._sampling_box = W.HBox([self.temperature, self.top_k, self.top_p, self.seed],
                                    layout=W.Layout(flex_flow="row wrap"))
        self.method.observe(lambda _change: self._sync_sampling(), names="value")
        self._sync_sampling()

        # --- buttons
        self.complete_button = W.Button(description="Complete", button_style="primary",
                                        icon="play", tooltip="Fill in the code at the cursor")
        self.stop_button = W.Button(description="Stop", icon="stop",
                                    disabled=True, tooltip="Stop the running completion")
        self.warmup_button = W.Button(description="Warm up", icon="fire",
                                      tooltip="Compile the model now so the first completion "
                                              "starts fast")
        self.complete_button.on_click(lambda _b: self.complete())
        self.stop_button.on_click(lambda _b: self.stop())
        self.warmup_button.on_click(lambda _b: self.warmup())

        # --- options: file path, context files, control tokens
        self.path = W.Text(value="", placeholder="e.g. src/app.py (optional)",
                           description="This file's path", style={"description_width": "initial"},
                           layout=W.Layout(width="420px"))
        self.strip_controls = W.Checkbox(value=False, indent=False,
                                         description="Drop control tokens from my code "
                                                     "(instead of stopping with an error)")
        self._context_box = W.VBox([])
        self.add_context_button = W.Button(description="Add context file", icon="plus")
        self.add_context_button.on_click(lambda _b: self.add_context_file())
        options = W.VBox([
            self.path,
            W.HTML('<span class="cg-note">Other files the model should see (multi-file '
                   'completion): each is given whole, before this file.</span>'),
            self._context_box, self.add_context_button, self.strip_controls])
        self.options = W.Accordion(children=[options], titles=("Options: file path, context "
                                                               "files, control tokens",),
                                   selected_index=None)

        # --- output
        self.message = W.HTML(value="", layout=W.Layout(display="none"))
        self.message.add_class("cg-message")
        self.result = W.HTML(value=render_completion(before, "", after, running=False)
                             if (before or after) else self._placeholder_view(), layout=full())
        self.result.add_class("cg-result")
        self.status = W.HTML(value="")
        self.status.add_class("cg-status-line")
        self._set_idle_status()
        self.history_select = W.Dropdown(options=[("(no completions yet)", -1)], value=-1,
                                         description="History", style={"description_width": "initial"},
                                         layout=W.Layout(width="640px"))
        self.insert_button = W.Button(description="Insert into code", icon="level-down",
                                      disabled=True,
                                      tooltip="Put the chosen completion into the code areas")
        self.insert_button.on_click(lambda _b: self.insert_history(self.history_select.value))

        header = W.HTML(f'<div style="font-size:15px"><b>Fill in the middle</b> · '
                        f'{_model_html(completer)}</div>')
        self._header = header
        self.widget = W.VBox([
            W.HTML(_CSS), header, self.mode, self._split_box, self._marker_box,
            W.HBox([self.max_new_tokens,
                    W.Label("Sampling", layout=W.Layout(width="auto", margin="0 4px 0 24px")),
                    self.method], layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self._sampling_box,
            self.options,
            W.HBox([self.complete_button, self.stop_button, self.warmup_button]),
            self.message,
            self._label("Result — inserted code highlighted"), self.result,
            self.status,
            W.HBox([self.history_select, self.insert_button]),
        ], layout=W.Layout(width="100%"))
        self.widget.add_class("cg-ui")

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @staticmethod
    def _max_tokens_for(completer: Any) -> int:
        """Slider limit: half the context (the prompt needs the rest), at most 1024."""
        context = int(getattr(completer, "context_length", 8192) or 8192)
        return max(8, min(1024, context // 2))

    @staticmethod
    def _label(text: str) -> W.HTML:
        label = W.HTML(f"<div>{html.escape(text)}</div>")
        label.add_class("cg-label")
        return label

    @staticmethod
    def _placeholder_view() -> str:
        return ('<pre class="cg-view"><span class="cg-elided">Type code, then click Complete. '
                "The inserted code will appear here, highlighted.</span></pre>")

    # ------------------------------------------------------------------ readable state
    @property
    def running(self) -> bool:
        """True while a completion (or warm-up) is running."""
        return self._busy.locked()

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        return _html_to_text(self.status.value)

    @property
    def result_text(self) -> str:
        """The result view as plain text (the code with the completion inserted)."""
        return _html_to_text(self.result.value)

    @property
    def message_text(self) -> str:
        """The error message shown, as plain text ('' when none)."""
        return _html_to_text(self.message.value)

    # ------------------------------------------------------------------ modes and options
    def _on_mode(self, change: dict) -> None:
        if self._switching:
            return
        marker = self.cursor_marker
        if change["new"] == "marker":
            self.code.value = self.before.value + marker + self.after.value
        else:
            text = self.code.value
            count = text.count(marker)
            if count > 1:
                self._show_error(fim.CursorError(
                    f"The text has {count} {marker!r} markers, so it cannot be split into two "
                    f"areas. Keep exactly one {marker!r}, then switch."))
                self._switching = True
                try:
                    self.mode.value = "marker"
                finally:
                    self._switching = False
                return
            before, after = fim.split_at_cursor(text, marker) if count else (text, "")
            self.before.value, self.after.value = before, after
        self._split_box.layout.display = "" if self.mode.value == "split" else "none"
        self._marker_box.layout.display = "" if self.mode.value == "marker" else "none"
        self._clear_message()

    def _sync_sampling(self) -> None:
        method = self.method.value
        self._sampling_box.layout.display = "none" if method == "greedy" else ""
        self.top_k.layout.display = "" if method == "top_k" else "none"
        self.top_p.layout.display = "" if method == "top_p" else "none"

    def add_context_file(self, path: str = "", content: str = "") -> tuple[W.Text, W.Textarea]:
        """Add a row for another file given as context; returns its (path, content) widgets.

        Example:
            >>> ui.add_context_file("utils.py", "def add(a, b):\\n    return a + b\\n")  # doctest: +SKIP
        """
        path_w = W.Text(value=path, placeholder="path, e.g. utils.py", description="Path",
                        layout=W.Layout(width="360px"))
        content_w = W.Textarea(value=content, rows=4, placeholder="file content",
                               layout=W.Layout(width="auto"))
        content_w.add_class("cg-code")
        remove = W.Button(description="Remove", icon="trash", layout=W.Layout(width="110px"))
        row = W.VBox([W.HBox([path_w, remove]), content_w],
                     layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))
        entry = (path_w, content_w, row)
        self._context_rows.append(entry)
        remove.on_click(lambda _b: self._remove_context(entry))
        self._context_box.children = tuple(r for _, _, r in self._context_rows)
        return path_w, content_w

    def _remove_context(self, entry: tuple) -> None:
        self._context_rows = [e for e in self._context_rows if e is not entry]
        self._context_box.children = tuple(r for _, _, r in self._context_rows)

    @property
    def context_files(self) -> list[ContextFile]:
        """The context files entered (rows with an empty path and content are skipped)."""
        files = []
        for path_w, content_w, _ in self._context_rows:
            if not path_w.value.strip() and not content_w.value:
                continue
            if not path_w.value.strip():
                raise ValueError("A context file has content but no path: give it a path "
                                 "(e.g. utils.py) or remove it under Options.")
            files.append(ContextFile(path_w.value.strip(), content_w.value))
        return files

    def sampling(self) -> Sampling:
        """The :class:`Sampling` chosen in the controls."""
        if self.method.value == "greedy":
            return Sampling()
        return Sampling(self.method.value, k=int(self.top_k.value), p=float(self.top_p.value),
                        temperature=float(self.temperature.value), seed=int(self.seed.value))

    def code_parts(self) -> tuple[str, str]:
        """``(before, after)`` from the areas (one-area mode: split at the cursor marker)."""
        if self.mode.value == "marker":
            return fim.split_at_cursor(self.code.value, self.cursor_marker)
        return self.before.value, self.after.value

    def set_completer(self, completer: Any) -> None:
        """Use another completer (e.g. after loading a model); the typed code is kept."""
        self.completer = completer
        top = self._max_tokens_for(completer)
        self.max_new_tokens.value = min(self.max_new_tokens.value, top)
        self.max_new_tokens.max = top
        self._header.value = (f'<div style="font-size:15px"><b>Fill in the middle</b> · '
                              f'{_model_html(completer)}</div>')
        self._clear_message()
        self._set_idle_status()

    # ------------------------------------------------------------------ messages
    def _show_error(self, err: BaseException | None) -> None:
        self.last_error = err
        if err is not None:
            self.last_traceback = "".join(traceback.format_exception(type(err), err,
                                                                     err.__traceback__))
        title, advice = explain_error(err, max_new_tokens=self.max_new_tokens.value)
        self.message.value = (f'<div class="cg-error">⚠ <b>{html.escape(title)}.</b> '
                              f"{html.escape(advice)}</div>")
        self.message.layout.display = ""

    def _clear_message(self) -> None:
        self.message.value = ""
        self.message.layout.display = "none"

    def _set_idle_status(self, note: str = "ready") -> None:
        self.status.value = (f'<div class="cg-status">{_model_html(self.completer)} · '
                             f"{html.escape(note)}</div>")

    # ------------------------------------------------------------------ actions
    def complete(self) -> bool:
        """Start a completion (what the Complete button does). Returns False if none started:
        one is already running, or the input has an error (then shown in the UI)."""
        if not self._busy.acquire(blocking=False):
            self.ignored_clicks += 1
            return False
        self.complete_button.disabled = True
        self.warmup_button.disabled = True
        try:
            self._clear_message()
            if self.completer is None:
                self._show_error(None)
                self._finish()
                return False
            before, after = self.code_parts()
            kwargs: dict[str, Any] = dict(
                max_new_tokens=int(self.max_new_tokens.value), sampling=self.sampling(),
                path=self.path.value.strip() or None, context_files=self.context_files or None,
                on_sentinel="strip" if self.strip_controls.value else "error")
            stream = self.completer.stream(before, after, **kwargs)
        except Exception as err:  # shown in the UI; the typed text is untouched
            self._show_error(err)
            self._finish()
            return False
        self._stream = stream
        self.runs += 1
        self.status.value = (f'<div class="cg-status">{_model_html(self.completer)} · '
                             "<i>completing…</i></div>")
        self.result.value = render_completion(before, "", after, running=True)
        self.stop_button.disabled = False
        self.stop_button.button_style = "danger"
        if self.run_in_thread:
            self._thread = threading.Thread(target=self._run, args=(stream, before, after),
                                            name="cg-completion", daemon=True)
            self._thread.start()
        else:
            self._run(stream, before, after)
        return True

    def _run(self, stream: Any, before: str, after: str) -> None:
        middle = ""
        try:
            last = 0.0
            for piece in stream:
                middle += piece
                now = time.perf_counter()
                if now - last >= self.update_interval:
                    self.result.value = render_completion(before, middle, after, running=True)
                    last = now
            result = getattr(stream, "result", None)
            self.last_result = result
            self.result.value = render_completion(before, middle, after)
            if result is not None:
                self.status.value = format_status(result, self.completer)
            else:
                self._set_idle_status("done")
            self._add_history(HistoryEntry(before, middle, after, result))
        except Exception as err:
            self.result.value = render_completion(before, middle, after)
            self._show_error(err)
            self._set_idle_status("failed — see the message above")
        finally:
            self._stream = None
            self._finish()

    def _finish(self) -> None:
        self.stop_button.disabled = True
        self.stop_button.button_style = ""
        self.complete_button.disabled = False
        self.warmup_button.disabled = False
        self._busy.release()

    def stop(self) -> None:
        """Stop the running completion (what the Stop button does); its text so far is kept."""
        stream = self._stream
        if stream is not None:
            stream.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running completion or warm-up to end (``timeout`` in seconds, None =
        no limit); True if it has ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def warmup(self) -> bool:
        """Compile the model for the current max new tokens (what the Warm up button does).

        Runs a one-piece stream, which compiles the streaming functions the UI uses.
        """
        if not self._busy.acquire(blocking=False):
            self.ignored_clicks += 1
            return False
        self.complete_button.disabled = True
        self.warmup_button.disabled = True
        self._clear_message()
        if self.completer is None:
            self._show_error(None)
            self._finish()
            return False
        self.status.value = (f'<div class="cg-status">{_model_html(self.completer)} · '
                             "<i>warming up (compiling)…</i></div>")

        def run() -> None:
            try:
                t0 = time.perf_counter()
                stream = self.completer.stream("", "", max_new_tokens=int(
                    self.max_new_tokens.value))
                for _piece in stream:
                    stream.stop()
                self._set_idle_status(f"warm: compiled in {time.perf_counter() - t0:.1f} s; "
                                      "completions now start fast")
            except Exception as err:
                self._show_error(err)
                self._set_idle_status("warm-up failed — see the message above")
            finally:
                self._finish()

        if self.run_in_thread:
            self._thread = threading.Thread(target=run, name="cg-warmup", daemon=True)
            self._thread.start()
        else:
            run()
        return True

    # ------------------------------------------------------------------ history
    def _add_history(self, entry: HistoryEntry) -> None:
        self.history = ([entry] + self.history)[: self.history_size]
        self.history_select.options = [(e.label(i + 1), i) for i, e in enumerate(self.history)]
        self.history_select.value = 0
        self.insert_button.disabled = False

    def insert_history(self, index: int = 0) -> None:
        """Put history entry ``index`` (0 = latest) into the code, cursor after the insertion.

        Example:
            >>> ui.insert_history(0)      # accept the latest completion   # doctest: +SKIP
        """
        if not 0 <= index < len(self.history):
            return
        entry = self.history[index]
        if self.mode.value == "marker":
            self.code.value = entry.before + entry.middle + self.cursor_marker + entry.after
        else:
            self.before.value = entry.before + entry.middle
            self.after.value = entry.after
        self._clear_message()


def _html_to_text(value: str) -> str:
    text = re.sub(r"<br\s*/?>", "\n", value)
    text = re.sub(r"<style.*?</style>", "", text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def build_ui(completer: Any, **kwargs: Any) -> CompletionUI:
    """Build the interactive completion app around ``completer`` (None: shows "no model").

    ``completer`` is a :class:`cg_helpers.completion.Completer` or anything with the same
    ``stream(before, after, **options)`` method and ``name`` / ``is_practice`` attributes.
    Keyword arguments go to :class:`CompletionUI` (``max_new_tokens``, ``run_in_thread``,
    ``cursor_marker``, ``history_size``, ``before``, ``after``).

    Example:
        >>> from cg_helpers.completion import Completer      # doctest: +SKIP
        >>> ui = build_ui(Completer.from_loaded(loaded))      # doctest: +SKIP
        >>> ui                                                # doctest: +SKIP
    """
    return CompletionUI(completer, **kwargs)
