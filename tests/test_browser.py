"""The completion UI in a real browser, offline: JupyterLab and Voila serving notebook 05.

Headless Debian Chromium driven by the Python ``playwright`` package (never ``playwright
install``; install with ``bash tools/install_browser.sh``). Each test serves a temporary copy of
``notebooks/05_interactive_completion.ipynb`` whose parameters point at a local model: the
offline practice model when it is present in the package, otherwise the session's tiny random
test preset (passed as ``PRESET=<dir>``, ``OFFLINE=False``). It types into both code areas,
clicks Complete, waits for the completion and the status line, and saves screenshots under
``test-artifacts/``. With ``CG_UPDATE_DOCS_IMG=1`` the Voila screenshot of the app also goes to
``docs/img/widget_ui.png`` (the README image).

Servers run in their own process group and are stopped in ``finally`` (kernels, which Jupyter
starts in sessions of their own, are stopped by pid too).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_interactive_completion.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMG = ROOT / "docs" / "img" / "widget_ui.png"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# Distinct text, so the wait cannot be satisfied by the notebook's own programmatic run.
BEFORE = "def browser_check(values):\n    total = 0\n    for v in values:\n        total += "
AFTER = "\n    return total\n\n\nprint(browser_check([1, 2, 3]))\n"


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Chromium is not installed: run `bash tools/install_browser.sh`"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: run `bash tools/install_browser.sh`"
    for module in ("jupyterlab", "voila", "papermill", "psutil"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -r requirements-dev.txt)"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_parameters(request) -> dict:
    """The practice model when the package has it, else the tiny test preset (built lazily)."""
    from cg_helpers.loading import PRACTICE_PRESET_DIR

    if (PRACTICE_PRESET_DIR / "config.json").is_file():
        return {"OFFLINE": True}
    return {"PRESET": str(request.getfixturevalue("test_preset_dir")), "OFFLINE": False}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request):
    """A temp dir with the parameterized notebook copy, fresh Jupyter/XDG dirs and settings."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path_factory.mktemp("browser")
    nb = load_notebook_node(str(NOTEBOOK))
    params = dict(_model_parameters(request), MAX_NEW_TOKENS=16)
    nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
    (root / "nb").mkdir()
    nbformat.write(nb, root / "nb" / NOTEBOOK.name)
    settings = root / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No news/update toasts over the notebook.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    for d in ("workspaces", "xdg_config", "xdg_cache", "jupyter_config", "jupyter_data",
              "jupyter_runtime", "chromium"):
        (root / d).mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    return root


def _env(root: Path) -> dict:
    env = dict(os.environ)
    env.update(
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        XDG_CONFIG_HOME=str(root / "xdg_config"), XDG_CACHE_HOME=str(root / "xdg_cache"),
        JUPYTER_CONFIG_DIR=str(root / "jupyter_config"),
        JUPYTER_DATA_DIR=str(root / "jupyter_data"),
        JUPYTER_RUNTIME_DIR=str(root / "jupyter_runtime"),
        JUPYTER_PLATFORM_DIRS="1", TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("KERAS_BACKEND", None)       # the notebook chooses it
    return env


@contextlib.contextmanager
def _server(name: str, cmd: list[str], root: Path, ready_url: str, timeout: float = 90,
            any_status: bool = False):
    """Run a server in its own process group; stop it (and its kernels) whatever happens."""
    import psutil

    log_path = ARTIFACTS / f"{name}-server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=root / "nb", env=_env(root), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    children: list = []
    try:
        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError:
                if any_status:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{name} did not answer {ready_url} in {timeout} s; "
                                   f"see {log_path}")
            time.sleep(0.25)
        yield proc
    finally:
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Kernels run in sessions of their own: stop any left, by pid.
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(children, timeout=5)
        log.close()


@contextlib.contextmanager
def _browser(root: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(root / "chromium"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000},
            env={k: v for k, v in _env(root).items()})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(90_000)
            yield page
        finally:
            context.close()


def _type_complete_and_wait(page, ui) -> dict:
    """Type into both areas, click Complete, wait for the new result and its status line."""
    before = ui.locator(".cg-before textarea")
    after = ui.locator(".cg-after textarea")
    before.fill(BEFORE)               # one input event = one model update per widget
    after.fill(AFTER)
    page.wait_for_timeout(300)
    ui.locator("button.jupyter-button", has_text="Complete").click()
    page.wait_for_function(
        """([marker]) => {
            const ui = document.querySelector('.cg-ui');
            const result = ui.querySelector('.cg-result').innerText;
            const status = ui.querySelector('.cg-status-line').innerText;
            return result.includes(marker) && status.includes('generated tokens');
        }""", arg=["def browser_check(values):"], timeout=90_000)
    state = page.evaluate(
        """() => {
            const ui = document.querySelector('.cg-ui');
            return {result: ui.querySelector('.cg-result').innerText,
                    status: ui.querySelector('.cg-status-line').innerText,
                    message: ui.querySelector('.cg-message').innerText,
                    before: ui.querySelector('.cg-before textarea').value,
                    middle: [...ui.querySelectorAll('.cg-result .cg-middle, .cg-result .cg-empty')]
                              .map(e => e.className)};
        }""")
    return state


def _fmt(marks: dict) -> str:
    return ", ".join(f"{k} at {v:.1f} s" for k, v in marks.items())


def _check_state(state: dict) -> None:
    from cg_helpers.widgets import PRACTICE_BADGE

    assert state["before"] == BEFORE, "the typed code was changed"
    assert state["message"].strip() == "", state["message"]
    assert state["result"].startswith(BEFORE.rstrip(" ")), state["result"][:200]
    assert "print(browser_check([1, 2, 3]))" in state["result"]
    assert state["middle"], "no highlighted insertion in the result view"
    status = state["status"]
    assert "prompt tokens" in status and "generated tokens" in status and "stop:" in status
    assert "tokens/s" in status and PRACTICE_BADGE in status


def test_jupyterlab_runs_notebook_and_completes(workdir):
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--allow-root", f"--IdentityProvider.token={token}",
           "--LanguageServerManager.autodetect=False", f"--ServerApp.root_dir={workdir / 'nb'}",
           f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
           f"--LabApp.user_settings_dir={workdir / 'settings'}"]
    t0 = time.monotonic()
    with _server("jupyterlab", cmd, workdir, f"{base}/api/status?token={token}"), \
            _browser(workdir) as page:
        try:
            marks = {"server up": time.monotonic() - t0}
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}",
                      wait_until="domcontentloaded")
            page.wait_for_selector("#jupyterlab-splash", state="detached")
            # The toolbar's idle indicator lies while the kernel starts; the status bar doesn't.
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            marks["kernel idle"] = time.monotonic() - t0
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            ui = page.locator(".cg-ui")
            ui.locator(".cg-before textarea").wait_for()
            marks["app shown"] = time.monotonic() - t0
            # The notebook's own programmatic completion has finished and the kernel is idle.
            ui.locator(".cg-status-line", has_text="generated tokens").wait_for()
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            marks["notebook done"] = time.monotonic() - t0
            state = _type_complete_and_wait(page, ui)
            marks["typed completion done"] = time.monotonic() - t0
            ui.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))
            ui.screenshot(path=str(ARTIFACTS / "jupyterlab_widget_ui.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"))
            raise
    _check_state(state)
    print(f"JupyterLab browser test: {time.monotonic() - t0:.1f} s ({_fmt(marks)})")


def test_voila_serves_notebook_as_app_and_completes(workdir):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "voila", NOTEBOOK.name, "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--show_tracebacks=True", "--token="]
    t0 = time.monotonic()
    # Any HTTP answer means it listens (GET / would start rendering the notebook).
    with _server("voila", cmd, workdir, f"{base}/cg-ready-probe", any_status=True), \
            _browser(workdir) as page:
        try:
            marks = {"server up": time.monotonic() - t0}
            page.goto(base + "/", wait_until="domcontentloaded")
            page.wait_for_selector("#loading", state="detached", timeout=120_000)
            ui = page.locator(".cg-ui")
            ui.locator(".cg-before textarea").wait_for()
            ui.locator(".cg-status-line", has_text="generated tokens").wait_for()
            marks["notebook done"] = time.monotonic() - t0
            state = _type_complete_and_wait(page, ui)
            marks["typed completion done"] = time.monotonic() - t0
            ui.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "voila.png"))
            ui.screenshot(path=str(ARTIFACTS / "voila_widget_ui.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "voila-failure.png"))
            raise
    _check_state(state)
    if os.environ.get("CG_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "voila_widget_ui.png", DOCS_IMG)
    print(f"Voila browser test: {time.monotonic() - t0:.1f} s ({_fmt(marks)})")


STOP_NOTEBOOK_CODE = '''\
import time
from cg_helpers.completion import CompletionResult, CompletionStream
from cg_helpers.widgets import build_ui


class SlowCompleter:
    """Yields a numbered piece every 50 ms for 30 s unless stopped (no model: a fast kernel)."""
    name, label, is_practice, context_length = "slow fake", "slow fake", True, 512

    def stream(self, before, after="", **options):
        def run(handle):
            out, t0 = [], time.perf_counter()
            for i in range(600):
                if handle.stopped:
                    break
                time.sleep(0.05)
                out.append(f"{i} ")
                yield out[-1]
            handle.result = CompletionResult(
                middle="".join(out), prompt="", before=before, after=after, prompt_tokens=1,
                generated_tokens=len(out), stop_reason="stopped" if handle.stopped else "length",
                stop_token=None, seconds=time.perf_counter() - t0, model_name=self.name,
                model_label=self.label, is_practice=True, bucket=128)
        return CompletionStream(run)


ui = build_ui(SlowCompleter(), update_interval=0.0)
ui
'''


def test_voila_stop_button_reaches_a_busy_kernel(workdir):
    """In a real kernel the completion runs in a thread, so Stop is processed mid-stream, and a
    double click starts one completion."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(STOP_NOTEBOOK_CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, workdir / "nb" / "stop_check.ipynb")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "voila", "stop_check.ipynb", "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--show_tracebacks=True", "--token="]
    t0 = time.monotonic()
    with _server("voila-stop", cmd, workdir, f"{base}/cg-ready-probe", any_status=True), \
            _browser(workdir) as page:
        try:
            page.goto(base + "/", wait_until="domcontentloaded")
            page.wait_for_selector("#loading", state="detached", timeout=120_000)
            ui = page.locator(".cg-ui")
            ui.locator(".cg-before textarea").fill("x = ")
            page.wait_for_timeout(300)
            ui.locator("button.jupyter-button", has_text="Complete").dblclick()
            ui.locator(".cg-result", has_text="5 ").wait_for(timeout=30_000)
            stop = ui.locator("button.jupyter-button", has_text="Stop")
            page.wait_for_function("(b) => !b.disabled", arg=stop.element_handle())
            stop.click()
            ui.locator(".cg-status-line", has_text="stop: stopped").wait_for(timeout=20_000)
            result = ui.locator(".cg-result").inner_text()
            options = ui.locator(".widget-dropdown select option").all_inner_texts()
            complete_disabled = ui.locator("button.jupyter-button",
                                           has_text="Complete").is_disabled()
            page.screenshot(path=str(ARTIFACTS / "voila_stop.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "voila-stop-failure.png"))
            raise
    numbers = result.removeprefix("x = ").split()
    assert 5 <= len(numbers) < 590, result[:200]     # stopped well before the 600 pieces
    assert numbers == [str(i) for i in range(len(numbers))], "a second stream interleaved"
    assert len(options) == 1 and "stopped" in options[0], options   # one completion ran
    assert not complete_disabled
    print(f"Voila Stop test: {time.monotonic() - t0:.1f} s")
