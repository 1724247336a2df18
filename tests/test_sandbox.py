"""The sandbox runs code in a separate, limited process: limits stop it, the caller survives."""

import os
import socket
import sys
import threading
import time

import pytest

from cg_helpers.sandbox import network_isolation, run_python


def test_clean_code_passes_and_errors_fail():
    assert run_python("assert sum(range(4)) == 6").passed
    r = run_python("assert 1 == 2, 'nope'")
    assert (r.status, r.error) == ("failed", "AssertionError: nope")
    r = run_python("def f(:\n    pass")
    assert r.status == "failed" and r.error.startswith("SyntaxError")


def test_runs_in_a_fresh_process_in_a_temp_dir():
    here = os.getcwd()
    src = (f"import os, sys\nassert os.getpid() != {os.getpid()}\n"
           f"assert os.getcwd() != {here!r} and 'cg-sandbox-' in os.getcwd()\n"
           "assert 'run_python' not in globals() and 'pytest' not in sys.modules\n"
           "open('scratch.txt', 'w').write('x')\n")
    assert run_python(src).passed
    assert not os.path.exists(os.path.join(here, "scratch.txt"))


def test_exiting_early_is_not_a_pass():
    assert run_python("import sys\nsys.exit(0)\nassert False").status == "failed"
    r = run_python("import os\nos._exit(0)")
    assert r.status == "crashed" and not r.passed


def test_endless_loop_is_stopped_by_the_wall_clock_timeout():
    t0 = time.perf_counter()
    r = run_python("while True:\n    pass", timeout=1.5)
    assert r.status == "timeout" and not r.passed
    assert time.perf_counter() - t0 < 6


def test_cpu_limit_stops_a_loop_before_the_wall_clock_does():
    r = run_python("while True:\n    pass", timeout=30, cpu_seconds=1)
    assert r.status == "timeout" and "CPU" in r.error
    assert r.seconds < 10


def test_sleeping_code_is_stopped_by_the_wall_clock():
    r = run_python("import time\ntime.sleep(60)", timeout=1)
    assert r.status == "timeout" and r.seconds < 5


def test_memory_limit_turns_runaway_allocation_into_a_failure():
    grow = "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))"
    r = run_python(grow, memory_mb=256, timeout=20)
    assert r.status == "memory" and not r.passed
    # The limit is what stops it: the same 300 MB fits under a larger limit.
    big = "x = bytearray(300 * 2 ** 20)\nassert len(x) == 300 * 2 ** 20"
    assert run_python(big, memory_mb=256).status == "memory"
    assert run_python(big, memory_mb=1024).passed


def test_floods_of_output_do_not_hang_the_caller():
    assert run_python("import sys\nfor _ in range(200):\n    print('x' * 100000)\n"
                      "sys.stderr.write('y' * 10 ** 6)").passed


def test_destructive_functions_are_disabled():
    assert run_python("import os\nos.system('true')").status == "failed"
    assert run_python("import shutil\nshutil.rmtree('/nonexistent')").status == "failed"


@pytest.fixture
def local_server():
    """A TCP server on 127.0.0.1 that accepts connections, so a connect can succeed."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield srv.getsockname()[1]
    stop.set()
    th.join()
    srv.close()


@pytest.mark.parametrize("isolation", [None, "socket-shim"])
def test_network_is_cut_off(local_server, isolation):
    connect = ("import socket\n"
               f"socket.create_connection(('127.0.0.1', {local_server}), timeout=3).close()\n")
    # Control: the same code reaches the server when the network is allowed.
    assert run_python(connect, network=True).passed
    r = run_python(connect, isolation=isolation)
    assert r.status == "failed" and "[Errno 101]" in r.error  # ENETUNREACH
    assert r.isolation == (isolation or network_isolation())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="unshare is Linux-only")
def test_unshare_is_used_where_it_works():
    # On this Linux box user namespaces work; if they stop working, the fallback must be chosen.
    import shutil
    import subprocess

    works = shutil.which("unshare") and subprocess.run(
        ["unshare", "-rn", "true"], capture_output=True).returncode == 0
    assert network_isolation() == ("unshare" if works else "socket-shim")


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(TypeError, match="source must be a str"):
        run_python(b"pass")
    with pytest.raises(ValueError, match="positive"):
        run_python("pass", timeout=0)
    with pytest.raises(ValueError, match="isolation"):
        run_python("pass", isolation="docker")
