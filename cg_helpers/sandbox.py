"""Run untrusted Python (model-written code and its tests) in a separate, limited process.

Each call starts a fresh ``python -I`` (never the caller's interpreter or notebook kernel) in a new
temporary working directory, with:

- a wall-clock timeout (the whole process group is killed with SIGKILL when it runs out),
- ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space, so runaway allocations raise
  ``MemoryError``), ``RLIMIT_FSIZE`` (size of files it writes) and no core dumps,
- no network: the process runs under ``unshare -rn`` (a new user + network namespace with no
  interfaces up) where that works; where it does not (containers that forbid user namespaces),
  a shim replaces ``socket.socket`` and friends so connections raise ``OSError``.
  :func:`network_isolation` says which one is in use,
- a scrubbed environment (``HOME`` and ``TMPDIR`` point into the temp dir), and
- a reliability guard like the HumanEval harness's: ``os.system``, ``os.kill``, ``os.fork``,
  ``subprocess.Popen``, file deletion and similar functions are disabled before the code runs.

This stops accidents (endless loops, memory blow-ups, stray file or network access) from code a
model wrote. It is not a security boundary against code written to escape it: run a hostile
benchmark inside a container or VM.

The code passes only if it runs to the end without raising: ``sys.exit()`` raises ``SystemExit``,
which counts as a failure, and a process that dies before reporting (``os._exit``, a signal)
fails too.

Example:
    >>> run_python("assert 1 + 1 == 2").passed
    True
    >>> run_python("while True: pass", timeout=1).status
    'timeout'
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["SandboxResult", "run_python", "network_isolation", "STATUSES"]

Status = Literal["passed", "failed", "timeout", "memory", "crashed"]
#: Every status a :class:`SandboxResult` can have.
STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "memory", "crashed")

_RESULT_PREFIX = "@@cg-sandbox-result@@"

# Runs inside the child before the candidate. argv: mem_bytes cpu_seconds fsize_bytes block_net.
# The candidate's stdout/stderr go to /dev/null; the verdict goes to a saved copy of stdout.
_BOOTSTRAP = r'''
import os, sys, resource, json, builtins
_out = os.dup(1)
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0); os.dup2(_null, 1); os.dup2(_null, 2)
mem, cpu, fsize, block_net = (int(a) for a in sys.argv[1:5])
def _lim(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
_lim(resource.RLIMIT_CORE, 0)
_lim(resource.RLIMIT_FSIZE, fsize)
_lim(resource.RLIMIT_AS, mem)  # best effort: macOS refuses RLIMIT_AS; the wall clock still holds
try:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
except (ValueError, OSError):
    pass
with open("candidate.py", encoding="utf-8") as f:
    _src = f.read()
if block_net:
    import socket
    def _no_network(*args, **kwargs):
        raise OSError(101, "network access is disabled in the sandbox")
    class _NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            _no_network()
    socket.socket = _NoSocket
    for _name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
                  "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, _name, _no_network)
def _report(status, error=""):
    os.write(_out, ("@@cg-sandbox-result@@" + json.dumps({"status": status, "error": error[:500]}) + "\n").encode())
# Reliability guard (after the bootstrap's own file work): as in the HumanEval harness.
import shutil, subprocess
os.environ["OMP_NUM_THREADS"] = "1"
for _mod, _names in ((os, ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir",
                           "fchdir", "setuid", "fork", "forkpty", "rename", "renames", "truncate",
                           "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
                           "lchown", "execv", "execve", "execvp", "spawnv", "posix_spawn")),
                     (shutil, ("rmtree", "move", "chown")), (subprocess, ("Popen",)),
                     (builtins, ("exit", "quit", "help"))):
    for _n in _names:
        if hasattr(_mod, _n):
            setattr(_mod, _n, None)
for _m in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    sys.modules[_m] = None
_glob = {"__name__": "__sandbox__", "__builtins__": builtins}
try:
    exec(compile(_src, "candidate.py", "exec"), _glob)
except MemoryError:
    _report("memory", "MemoryError")
except BaseException as e:
    _report("failed", type(e).__name__ + (": " + str(e) if str(e) else ""))
else:
    _report("passed")
'''


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed run.

    ``status`` is one of :data:`STATUSES`: ``passed``; ``failed`` (raised, including
    ``SyntaxError`` and ``SystemExit``); ``timeout`` (wall or CPU limit); ``memory`` (hit the
    address-space limit); ``crashed`` (died without reporting, e.g. ``os._exit`` or a signal).
    ``error`` is a short description, ``seconds`` the wall time, ``isolation`` the network
    isolation used (see :func:`network_isolation`).
    """

    status: Status
    error: str
    seconds: float
    returncode: int | None
    isolation: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=None)
def network_isolation() -> str:
    """``"unshare"`` if ``unshare -rn`` works here (checked once per process), else ``"socket-shim"``.

    Example:
        >>> network_isolation() in ("unshare", "socket-shim")
        True
    """
    exe = shutil.which("unshare")
    if exe is None:
        return "socket-shim"
    try:
        probe = subprocess.run([exe, "-rn", sys.executable, "-I", "-c",
                                "import socket; s = socket.socket(); "
                                "print(s.connect_ex(('127.0.0.1', 9)))"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "socket-shim"
    # In a fresh network namespace even loopback is down: ENETUNREACH (101), never 0.
    ok = probe.returncode == 0 and probe.stdout.strip() not in ("", "0")
    return "unshare" if ok else "socket-shim"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(source: str, *, timeout: float = 10.0, cpu_seconds: int | None = None,
               memory_mb: int = 1024, file_size_mb: int = 16, network: bool = False,
               isolation: Literal["unshare", "socket-shim"] | None = None,
               python: str | None = None) -> SandboxResult:
    """Run ``source`` in a fresh, limited Python process and report whether it ran cleanly.

    Args:
        source: Python code; it passes if it runs to the end without raising.
        timeout: wall-clock seconds before the process group is killed.
        cpu_seconds: ``RLIMIT_CPU``; defaults to ``ceil(timeout)``.
        memory_mb: ``RLIMIT_AS`` in MiB. Allocations beyond it raise ``MemoryError``.
        file_size_mb: ``RLIMIT_FSIZE`` in MiB.
        network: allow network access (default: isolated).
        isolation: how to cut the network; default :func:`network_isolation` (the best that
            works here). ``"socket-shim"`` forces the fallback.
        python: interpreter to run (default: ``sys.executable``).

    Example:
        >>> run_python("x = [0] * (10 ** 10)", memory_mb=256).status
        'memory'
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str of Python code, got {type(source).__name__}.")
    if timeout <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout and memory_mb must be positive, got {timeout} and {memory_mb}.")
    cpu = int(cpu_seconds if cpu_seconds is not None else max(1, math.ceil(timeout)))
    if os.name != "posix":
        raise OSError("The sandbox needs a POSIX system (resource limits and process groups); "
                      "run the evaluation on Linux (Colab, Kaggle, WSL) or macOS.")
    if isolation not in (None, "unshare", "socket-shim"):
        raise ValueError(f"isolation must be 'unshare', 'socket-shim' or None, got {isolation!r}.")
    isolation = "none" if network else (isolation or network_isolation())
    argv = [python or sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(memory_mb * 2**20),
            str(cpu), str(file_size_mb * 2**20), "1" if isolation == "socket-shim" else "0"]
    if isolation == "unshare":
        argv = [shutil.which("unshare") or "unshare", "-rn"] + argv
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cg-sandbox-") as tmp:
        with open(os.path.join(tmp, "candidate.py"), "w", encoding="utf-8") as f:
            f.write(source)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp,
               "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return SandboxResult("timeout", f"wall-clock limit of {timeout:g} s",
                                 time.perf_counter() - start, None, isolation)
        except BaseException:  # KeyboardInterrupt in a notebook: never leave the child running
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            _kill_group(proc)  # anything the candidate left behind in its group
    seconds = time.perf_counter() - start
    rc = proc.returncode
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith(_RESULT_PREFIX):
            verdict = json.loads(line[len(_RESULT_PREFIX):])
            return SandboxResult(verdict["status"], verdict["error"], seconds, rc, isolation)
    if rc == -signal.SIGXCPU or rc == -signal.SIGKILL:
        return SandboxResult("timeout", f"CPU limit of {cpu} s", seconds, rc, isolation)
    detail = err.decode("utf-8", "replace").strip()[-300:]
    why = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
    return SandboxResult("crashed", f"process {why} before reporting a result"
                         + (f": {detail}" if detail else ""), seconds, rc, isolation)
