"""The completion UI in plain pytest: set widget values, click, assert on widget state.

Runs around the tiny random model (real Completer, real streaming) and around a fake completer
(for timing-dependent behaviour: double clicks, Stop, errors in the middle of a stream).
"""

from __future__ import annotations

import threading
import time

import pytest

from cg_helpers import fim
from cg_helpers.completion import Completer, CompletionResult, CompletionStream, Sampling
from cg_helpers.widgets import (PRACTICE_BADGE, CompletionUI, build_ui, explain_error,
                                format_status, render_completion)


class FakeCompleter:
    """Same interface as Completer.stream; yields ``pieces`` with ``delay`` seconds each."""

    def __init__(self, pieces=("x", " + ", "1"), delay=0.0, fail_after=None, is_practice=False):
        self.name = "fake model"
        self.label = "fake model for tests"
        self.is_practice = is_practice
        self.context_length = 512
        self.pieces = list(pieces)
        self.delay = delay
        self.fail_after = fail_after
        self.calls: list[dict] = []
        self.active = 0
        self.max_active = 0
        self._count_lock = threading.Lock()

    def stream(self, before, after="", **kwargs):
        # The same input checks as the real engine (sentinels, context files).
        prompt = fim.fim_prompt(before, after, kwargs.get("path"),
                                context_files=kwargs.get("context_files"),
                                on_sentinel=kwargs.get("on_sentinel", "error"))
        self.calls.append(dict(before=before, after=after, **kwargs))
        limit = kwargs.get("max_new_tokens", 64)

        def run(handle):
            with self._count_lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            t0, out, first = time.perf_counter(), [], None
            try:
                for i, piece in enumerate(self.pieces[:limit]):
                    if handle.stopped:
                        break
                    if self.fail_after is not None and i == self.fail_after:
                        raise RuntimeError("device lost")
                    time.sleep(self.delay)
                    out.append(piece)
                    first = first if first is not None else time.perf_counter() - t0
                    yield piece
            finally:
                with self._count_lock:
                    self.active -= 1
            stopped = handle.stopped and len(out) < len(self.pieces[:limit])
            handle.result = CompletionResult(
                middle="".join(out), prompt=prompt, before=before, after=after,
                prompt_tokens=len(prompt), generated_tokens=len(out) + (0 if stopped else 1),
                stop_reason="stopped" if stopped else "sentinel",
                stop_token=None if stopped else fim.FILE_SEPARATOR,
                seconds=time.perf_counter() - t0, model_name=self.name, model_label=self.label,
                is_practice=self.is_practice, bucket=128, first_piece_seconds=first)

        return CompletionStream(run)


def wait_until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def tiny_completer(test_lm):
    return Completer(test_lm, name="random test model", is_practice=True, context_length=512)


# ---------------------------------------------------------------- around the tiny model
@pytest.mark.parametrize("threaded", [False, True])
def test_tiny_model_completion_fills_result_and_status(tiny_completer, threaded):
    ui = build_ui(tiny_completer, run_in_thread=threaded, max_new_tokens=8)
    before, after = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
    ui.before.value, ui.after.value = before, after
    ui.complete_button.click()
    assert ui.wait(60)
    r = ui.last_result
    assert r is not None and ui.message_text == ""
    # Greedy streaming gives the same middle as the engine's complete().
    assert r.middle == tiny_completer.complete(before, after, max_new_tokens=8).middle
    assert 1 <= r.generated_tokens <= 8
    shown = before + (r.middle or "⟨nothing inserted⟩") + after
    assert ui.result_text == shown
    status = ui.status_text
    assert "random test model" in status and PRACTICE_BADGE in status
    assert f"{r.prompt_tokens} prompt tokens" in status
    assert f"{r.generated_tokens} generated tokens" in status
    assert f"stop: {r.stop_reason}" in status and "tokens/s" in status
    assert not ui.complete_button.disabled and ui.stop_button.disabled
    assert ui.before.value == before and ui.after.value == after


def test_tiny_model_sentinel_error_keeps_text_then_strip_option_completes(tiny_completer):
    ui = build_ui(tiny_completer, run_in_thread=False, max_new_tokens=4)
    typed = "s = '<|fim_middle|>'\nx = "
    ui.before.value = typed
    ui.complete_button.click()
    msg = ui.message_text
    assert "Control token" in msg and "'<|fim_middle|>'" in msg and "character 5" in msg
    assert "Drop control tokens" in msg
    assert ui.before.value == typed and ui.runs == 0 and ui.last_result is None
    assert not ui.complete_button.disabled
    ui.strip_controls.value = True
    ui.complete_button.click()
    assert ui.message_text == "" and ui.last_result is not None and ui.runs == 1
    assert ui.before.value == typed


def test_tiny_model_over_context_is_explained(tiny_completer):
    ui = build_ui(tiny_completer, run_in_thread=False, max_new_tokens=8)
    ui.before.value = "x = "
    ui.add_context_file("big.py", "value = 12345\n" * 400)
    ui.complete_button.click()
    msg = ui.message_text
    assert "Too long for the model's context" in msg and "max new tokens" in msg
    assert ui.before.value == "x = " and ui.last_result is None


# ---------------------------------------------------------------- errors, with a fake
def test_no_model_loaded_is_explained_and_set_completer_recovers():
    ui = build_ui(None, run_in_thread=False)
    ui.before.value = "import "
    ui.complete_button.click()
    assert "No model loaded" in ui.message_text and "Completer.from_loaded" in ui.message_text
    assert ui.before.value == "import " and not ui.complete_button.disabled
    ui.set_completer(FakeCompleter(pieces=["sys"]))
    assert ui.message_text == ""
    ui.complete_button.click()
    assert ui.result_text == "import sys"


def test_cursor_marker_errors_keep_text():
    ui = build_ui(FakeCompleter(), run_in_thread=False)
    ui.mode.value = "marker"
    text = "a = <CURSOR>\nb = <CURSOR>\n"
    ui.code.value = text
    ui.complete_button.click()
    assert "Cursor marker" in ui.message_text and "2 times" in ui.message_text
    assert ui.code.value == text
    ui.code.value = "no marker here"
    ui.complete_button.click()
    assert "No cursor marker" in ui.message_text and ui.code.value == "no marker here"


def test_exception_during_stream_is_shown_and_partial_text_kept():
    fake = FakeCompleter(pieces=["ab", "cd", "ef"], fail_after=2)
    ui = build_ui(fake, run_in_thread=False)
    ui.before.value, ui.after.value = "x = ", "\n"
    ui.complete_button.click()
    assert "The completion failed (RuntimeError)" in ui.message_text
    assert "device lost" in ui.message_text and "RuntimeError" in ui.last_traceback
    assert ui.result_text == "x = abcd\n"
    assert "failed" in ui.status_text and not ui.running
    assert ui.before.value == "x = " and ui.after.value == "\n"


def test_explain_error_messages_say_what_to_do():
    title, advice = explain_error(fim.BudgetError("3000 tokens exceed 512."), max_new_tokens=64)
    assert title == "Too long for the model's context" and "(now 64)" in advice
    assert explain_error(ValueError("bad k"))[0] == "Invalid setting"
    title, advice = explain_error(MemoryError("out of memory"))
    assert "MemoryError" in title and "ui.last_traceback" in advice


# ---------------------------------------------------------------- threads: clicks and Stop
def test_double_click_while_running_starts_one_completion():
    fake = FakeCompleter(pieces=["a"] * 10, delay=0.03)
    ui = build_ui(fake, run_in_thread=True)
    ui.before.value = "x = "
    ui.complete_button.click()
    assert ui.complete_button.disabled and not ui.stop_button.disabled
    ui.complete_button.click()
    ui.complete_button.click()
    assert ui.wait(10)
    assert len(fake.calls) == 1 and fake.max_active == 1
    assert ui.runs == 1 and ui.ignored_clicks == 2
    assert ui.result_text == "x = " + "a" * 10
    assert not ui.complete_button.disabled and ui.stop_button.disabled


def test_stop_ends_the_stream_and_keeps_what_was_generated():
    fake = FakeCompleter(pieces=[f"p{i} " for i in range(200)], delay=0.01)
    ui = build_ui(fake, run_in_thread=True, max_new_tokens=200, update_interval=0.0)
    ui.before.value = "# "
    ui.complete_button.click()
    assert wait_until(lambda: "p2 " in ui.result_text)
    ui.stop_button.click()
    assert ui.wait(10)
    r = ui.last_result
    assert r.stop_reason == "stopped" and 3 <= len(r.middle.split()) < 200
    assert "stop: stopped" in ui.status_text
    assert ui.result_text == "# " + r.middle


def test_results_stream_into_the_view_before_the_end():
    fake = FakeCompleter(pieces=["one ", "two ", "three"], delay=0.2)
    ui = build_ui(fake, run_in_thread=True, update_interval=0.0)
    ui.complete_button.click()
    assert wait_until(lambda: "one" in ui.result_text, timeout=5)
    assert "three" not in ui.result_text and "completing" in ui.status_text
    assert ui.wait(10) and ui.result_text == "one two three"


# ---------------------------------------------------------------- controls and history
def test_controls_reach_the_completer():
    fake = FakeCompleter()
    ui = build_ui(fake, run_in_thread=False)
    ui.max_new_tokens.value = 2
    ui.method.value = "top_p"
    ui.top_p.value, ui.temperature.value, ui.seed.value = 0.5, 0.7, 3
    ui.path.value = "main.py"
    ui.add_context_file("utils.py", "def helper():\n    pass\n")
    ui.add_context_file("", "")          # an empty row is ignored
    ui.complete_button.click()
    call = fake.calls[-1]
    assert call["max_new_tokens"] == 2 and call["path"] == "main.py"
    assert call["sampling"] == Sampling("top_p", p=0.5, temperature=0.7, seed=3)
    assert [(c.path, c.content) for c in call["context_files"]] == [
        ("utils.py", "def helper():\n    pass\n")]
    assert ui.result_text == "x + "            # two pieces: max_new_tokens was honoured
    assert not ui.top_p.layout.display and ui.top_k.layout.display == "none"
    ui.method.value = "greedy"
    assert ui._sampling_box.layout.display == "none"


def test_context_file_without_path_is_explained():
    ui = build_ui(FakeCompleter(), run_in_thread=False)
    ui.add_context_file("", "content")
    ui.complete_button.click()
    assert "no path" in ui.message_text and ui.runs == 0


def test_mode_toggle_round_trip_keeps_text():
    ui = build_ui(FakeCompleter(pieces=["1"]), run_in_thread=False)
    ui.before.value, ui.after.value = "x = ", "\nprint(x)\n"
    ui.mode.value = "marker"
    assert ui.code.value == "x = <CURSOR>\nprint(x)\n"
    assert ui._split_box.layout.display == "none" and ui._marker_box.layout.display == ""
    ui.complete_button.click()
    assert ui.result_text == "x = 1\nprint(x)\n"
    ui.code.value = "y = <CURSOR> + 2"
    ui.mode.value = "split"
    assert (ui.before.value, ui.after.value) == ("y = ", " + 2")
    ui.mode.value = "marker"
    ui.code.value = "<CURSOR><CURSOR>"
    ui.mode.value = "split"                 # refused: two markers; nothing is lost
    assert ui.mode.value == "marker" and ui.code.value == "<CURSOR><CURSOR>"
    assert "2 '<CURSOR>' markers" in ui.message_text


def test_history_keeps_last_five_and_reinserts():
    fake = FakeCompleter()
    ui = build_ui(fake, run_in_thread=False)
    for i in range(7):
        fake.pieces = [f"v{i}"]
        ui.before.value, ui.after.value = f"a{i} = ", "\n"
        ui.complete_button.click()
    assert len(ui.history) == 5
    assert [e.middle for e in ui.history] == ["v6", "v5", "v4", "v3", "v2"]
    labels = [label for label, _ in ui.history_select.options]
    assert labels[0].startswith("1. “v6”") and "sentinel" in labels[0]
    ui.before.value, ui.after.value = "something else", ""
    ui.insert_history(2)
    assert (ui.before.value, ui.after.value) == ("a4 = v4", "\n")
    ui.history_select.value = 0
    ui.insert_button.click()
    assert (ui.before.value, ui.after.value) == ("a6 = v6", "\n")
    ui.mode.value = "marker"
    ui.insert_history(1)
    assert ui.code.value == "a5 = v5<CURSOR>\n"


def test_warmup_compiles_through_stream_and_reports():
    fake = FakeCompleter(pieces=["a", "b", "c"])
    ui = build_ui(fake, run_in_thread=True)
    assert ui.warmup_button.click() is None and ui.wait(10)
    assert len(fake.calls) == 1 and "warm: compiled in" in ui.status_text
    assert not ui.complete_button.disabled


def test_practice_badge_only_for_practice_models():
    assert PRACTICE_BADGE in build_ui(FakeCompleter(is_practice=True)).status_text
    assert PRACTICE_BADGE not in build_ui(FakeCompleter(is_practice=False)).status_text


# ---------------------------------------------------------------- pure rendering
def test_render_completion_escapes_and_keeps_whitespace():
    out = render_completion("if a <b:\n\t", "x = '<&>'", "\n  end")
    assert 'class="cg-view"' in out and "white-space: pre" not in out  # style lives in CSS
    assert "if a &lt;b:\n\t" in out and "x = '&lt;&amp;&gt;'" in out
    assert '<span class="cg-middle" title="inserted by the model">x = \'&lt;&amp;&gt;\'</span>' in out
    assert "\n  end" in out
    assert "nothing inserted" in render_completion("a", "", "b")
    assert "▌" in render_completion("a", "", "b", running=True)
    long = "".join(f"line {i}\n" for i in range(100))
    out = render_completion(long, "X", long, context_lines=5)
    assert "… 95 lines above …" in out and "… 95 lines below …" in out
    assert "line 94" not in out.split("cg-middle")[0] and "line 99" in out


def test_css_sets_monospace_pre_for_the_view():
    from cg_helpers.widgets import _CSS

    view = _CSS.split(".cg-ui .cg-view {")[1].split("}")[0]
    assert "white-space: pre;" in view and "monospace" in view


def test_format_status_mentions_trimmed_prompt():
    r = CompletionResult(middle="a", prompt="p", before="b", after="", prompt_tokens=500,
                         generated_tokens=3, stop_reason="eos", stop_token="<eos>", seconds=0.5,
                         model_name="m", model_label="m", is_practice=False, bucket=512,
                         truncated=True, dropped_before_chars=1200, first_piece_seconds=0.04)
    html = format_status(r)
    assert "500</b> prompt tokens" in html and "stop: <b>eos (&lt;eos&gt;)</b>" in html
    assert "first piece 40 ms" in html and "6.0 tokens/s" in html and "1200 characters" in html


def test_ui_displays_as_a_widget():
    ui = build_ui(FakeCompleter())
    assert isinstance(ui, CompletionUI)
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_set_completer_adapts_the_token_limit_to_the_context():
    ui = build_ui(None, max_new_tokens=900)
    assert ui.max_new_tokens.max == 1024 and ui.max_new_tokens.value == 900
    small = FakeCompleter()
    small.context_length = 256
    ui.set_completer(small)
    assert ui.max_new_tokens.max == 128 and ui.max_new_tokens.value == 128
    assert "fake model" in ui.status_text and "no model" not in ui.status_text
