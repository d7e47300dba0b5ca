"""The sandbox against hostile programs: each is contained, never counted as passed, leaves the harness
(and everyone else's processes) running and nothing of itself behind."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

from accuracy.llm.sandbox import SERVER, Limits, Sandbox, _ending, _job, _wire, run_programs

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the switch to user nobody needs root")


@functools.cache
def isolation_here() -> dict:
    """What this machine gives the sandbox, asked once: one trivial program through one helper."""
    with Sandbox(workers=1) as box:
        return box.run("pass").isolation


def fully_isolated() -> bool:
    """Root with PID, mount and network namespaces and a read-only host view (a plain Docker container
    without CAP_SYS_ADMIN has root but no namespaces: the containment tests do not apply there)."""
    isolation = isolation_here()
    return AS_ROOT and bool(isolation) and all(value for value in isolation.values() if isinstance(value, bool))


@pytest.fixture
def full_isolation() -> None:
    if not fully_isolated():
        pytest.skip(f"needs root with namespaces; here the sandbox has {isolation_here()}")


needs_isolation = pytest.mark.usefixtures("full_isolation")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1, limits=Limits(timeout=2.0, memory_bytes=512 * 1024**2)) as box:
        yield box


def _processes_matching(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker`` (e.g. a ``sleep`` a program started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _leftovers(box: Sandbox) -> list[int]:
    """Processes forked from this sandbox's helpers (a fork keeps the helper's command line, which
    names the helper's own run-directory base), other than the helpers themselves."""
    found = []
    for server in box._all:
        found += [pid for pid in _processes_matching(server.base_dir) if pid != server.process.pid]
    return found


def _sleep_interval() -> str:
    """A valid ``sleep`` argument unique to this test, to find its process on the host afterwards."""
    return f"300.{os.getpid()}{uuid.uuid4().int % 10**6}"


# Starts a setsid double-forked ``sleep INTERVAL`` and prints "daemon up" once it is seen running.
DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', 'INTERVAL'])
    os._exit(0)
def _running():
    for pid in os.listdir('/proc'):
        try:
            with open('/proc/' + pid + '/cmdline', 'rb') as handle:
                if b'INTERVAL' in handle.read():
                    return True
        except OSError:
            pass
    return False
deadline = time.time() + 3
while not _running() and time.time() < deadline:
    time.sleep(0.01)
print('daemon up' if _running() else 'daemon missing', flush=True)
"""


def _daemon(interval: str) -> str:
    return DAEMON.replace("INTERVAL", interval)


def _assert_still_works(sandbox: Sandbox) -> None:
    result = sandbox.run("assert sum(range(4)) == 6")
    assert result.completed and result.status == "completed", result


def test_a_returning_program_completes_and_a_raising_one_says_what_it_raised(sandbox):
    ok = sandbox.run("def f(x):\n    return x * 2\nassert f(2) == 4\n")
    wrong = sandbox.run("def f(x):\n    return x + 3\nassert f(2) == 4\n")
    broken = sandbox.run("def f(x) return x\n")
    assert (ok.status, ok.completed) == ("completed", True)
    assert (wrong.status, wrong.completed, wrong.exception) == ("raised", False, "AssertionError")
    assert (broken.status, broken.exception) == ("raised", "SyntaxError")


def test_output_is_captured_and_the_traceback_names_the_program(sandbox):
    result = sandbox.run("print('hello from inside')\nraise ValueError('bad value')\n", filename="<task 7>")
    assert "hello from inside" in result.output
    assert "ValueError: bad value" in result.output and "<task 7>" in result.output
    assert result.exception == "ValueError"


@needs_isolation
def test_runs_unprivileged_in_an_empty_private_directory_with_a_minimal_environment(sandbox):
    program = textwrap.dedent("""
        import os, sys
        assert os.getuid() >= 0x40000000 and os.getgid() == os.getuid(), (os.getuid(), os.getgid())
        print('uid', os.getuid())
        assert os.listdir('.') == [], os.listdir('.')
        assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'TMPDIR'], sorted(os.environ)
        assert sys.stdin.read() == ''
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
        assert pids == ['1'], pids  # its own PID namespace: nothing else is visible
        assert os.getpid() == 1
    """)
    result = sandbox.run(program)
    assert result.completed, result.output
    assert result.isolation == {"network": True, "pid_namespace": True, "mount_namespace": True,
                                "unprivileged_user": True, "read_only_host": True, "host_sockets_hidden": True,
                                "harness_files_hidden": True, "user_namespaces_forbidden": True, "memory": result.isolation["memory"],
                                "processes": result.isolation["processes"]}
    # a user of its own per helper: another helper's program runs as another uid
    with Sandbox(workers=1) as other:
        assert other.run(program).output.split()[1] != result.output.split()[1]


def test_endless_loop_times_out(sandbox):
    result = sandbox.run("while True:\n    pass\n", limits=Limits(timeout=1.0))
    assert result.status == "timed out" and not result.completed
    assert 0.9 <= result.seconds < 5
    _assert_still_works(sandbox)


def test_memory_hog_hits_the_address_space_limit(sandbox):
    program = "hoard = []\nwhile True:\n    hoard.append(bytearray(16 * 1024 * 1024))\n"
    result = sandbox.run(program, limits=Limits(timeout=10.0, memory_bytes=256 * 1024**2))
    assert result.status == "raised" and result.exception == "MemoryError"
    _assert_still_works(sandbox)


def test_output_flood_is_capped_and_cut_off(sandbox):
    result = sandbox.run("while True:\n    print('x' * 1000)\n", limits=Limits(timeout=5.0, output_bytes=2048))
    assert result.status in ("raised", "error", "timed out")
    assert result.output_truncated and len(result.output) <= 2048
    assert result.seconds < 4  # cut off when the flood passed its cap, not at the timeout
    _assert_still_works(sandbox)


def test_file_size_limit(sandbox):
    program = "open('big', 'wb').write(b'x' * (4 * 1024 * 1024))\n"
    result = sandbox.run(program, limits=Limits(file_bytes=1024**2))
    assert result.status == "raised" and "File too large" in result.output


@needs_isolation
def test_setsid_double_fork_does_not_outlive_its_program(sandbox):
    interval = _sleep_interval()
    result = sandbox.run(_daemon(interval) + "raise SystemExit(0)\n")
    assert "daemon up" in result.output
    assert result.status == "raised" and result.exception == "SystemExit"
    assert _processes_matching(interval) == []
    assert _leftovers(sandbox) == []


@needs_isolation
def test_daemon_left_by_a_passing_program_is_killed_too(sandbox):
    interval = _sleep_interval()
    program = textwrap.dedent(f"""
        import subprocess, time
        subprocess.Popen(['setsid', 'sh', '-c', 'sleep {interval} & sleep {interval}'], start_new_session=True)
        time.sleep(0.3)
        print(subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True).stdout, flush=True)
    """)
    result = sandbox.run(program)
    assert result.completed
    assert result.output.count(f"sleep {interval}") >= 2  # both were running inside
    assert _processes_matching(interval) == []


@needs_isolation
def test_fork_bomb_is_bounded_and_cleaned_up(sandbox):
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = sandbox.run(program, limits=Limits(timeout=1.0, processes=16))
    assert result.status == "timed out"
    assert _leftovers(sandbox) == []
    _assert_still_works(sandbox)


def test_exit_code_zero_before_the_end_is_not_completion(sandbox):
    result = sandbox.run("import os\nos._exit(0)\nassert False\n")
    assert result.exit_code == 0 and not result.completed and result.status == "error"


def test_printed_or_written_success_text_is_not_completion(sandbox):
    program = textwrap.dedent("""
        import os, secrets
        fake = [b'passed', b'PASSED', b'check returned', secrets.token_hex(24).encode(), b'{"passed": true}']
        for fd in range(1, 20):
            for text in fake:
                try:
                    os.write(fd, text + b'\\n')
                except OSError:
                    pass
        os._exit(0)
    """)
    result = sandbox.run(program)
    assert not result.completed and result.status == "error"
    assert "passed" in result.output  # it did print; printing just does not count


@needs_isolation
def test_killing_the_parent_and_everything_harms_nothing_outside(sandbox):
    canary = subprocess.Popen(["sleep", "120"], user="nobody", group="nogroup")  # same user, outside
    try:
        program = textwrap.dedent("""
            import os, signal, subprocess
            for target in (os.getppid(), -1, 0):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
            for pid in range(2, 4000):  # guessing host pids: none exist in this namespace
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(['sh', '-c', 'kill -9 -1'])
            os._exit(0)
        """)
        result = sandbox.run(program)
        assert not result.completed
        assert canary.poll() is None, "a process outside the sandbox was killed"
        _assert_still_works(sandbox)
    finally:
        canary.kill()
        canary.wait()


@needs_isolation
def test_writes_outside_its_directory_land_nowhere(sandbox, tmp_path):
    marker = f"sandbox-escape-{uuid.uuid4().hex}"
    guarded = tmp_path / "harness-file.txt"
    guarded.write_text("original")
    with open(__file__, "rb") as handle:
        this_file = handle.read()
    program = textwrap.dedent(f"""
        import os
        for place in ['/tmp', '/var/tmp', '/dev/shm', '/run', '/run/lock', '..', '/', '/work', '/root', '/etc']:
            try:
                with open(os.path.join(place, '{marker}'), 'w') as handle:
                    handle.write('escaped')
            except OSError:
                pass
        for path in ['{guarded}', '{__file__}']:
            try:
                with open(path, 'a') as handle:
                    handle.write('tampered')
            except OSError:
                pass
        raise SystemExit(0)
    """)
    result = sandbox.run(program)
    assert result.exception == "SystemExit"
    leaked = [path for place in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/", "/work", "/root", "/etc")
              for path in glob.glob(os.path.join(place, marker))]
    assert leaked == []
    assert guarded.read_text() == "original"
    with open(__file__, "rb") as handle:
        assert handle.read() == this_file


@needs_isolation
def test_the_host_is_read_only_even_where_the_program_user_may_write(sandbox):
    open_to_all = tempfile.mkdtemp(prefix="accuracy-sandbox-test-", dir="/var/lib")
    os.chmod(open_to_all, 0o777)  # writable for nobody: only the read-only view stops it
    try:
        target = os.path.join(open_to_all, "escaped")
        result = sandbox.run(f"open({target!r}, 'w').write('x')\n")
        assert result.status == "raised" and "Read-only file system" in result.output
        assert os.listdir(open_to_all) == []
        assert sandbox.run("open('/tmp/ok', 'w').write('x')\nopen('here', 'w').write('x')\n").completed
    finally:
        shutil.rmtree(open_to_all, ignore_errors=True)


@needs_isolation
def test_private_tmp_is_fresh_per_run_and_size_capped(sandbox):
    first = sandbox.run("open('/tmp/left-behind', 'w').write('x')\nopen('/dev/shm/too', 'w').write('x')\n")
    second = sandbox.run("import os\nassert os.listdir('/tmp') == [] and os.listdir('/dev/shm') == []\n")
    assert first.completed and second.completed, second.output
    filler = "block = b'x' * (1 << 20)\nwith open('fill', 'wb') as handle:\n    for _ in range(64):\n" \
             "        handle.write(block)\n"
    full = sandbox.run(filler, limits=Limits(tmp_bytes=8 * 1024**2, file_bytes=1 << 30))
    assert full.status == "raised" and "No space left on device" in full.output


@needs_isolation
def test_socket_cannot_reach_the_host(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\n"
        result = sandbox.run(program)
        assert result.status == "raised" and result.exception in ("ConnectionRefusedError", "OSError")
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def test_run_dirs_are_removed_and_helpers_stop_on_close():
    with Sandbox(workers=2) as box:
        helpers = [server.process for server in box._all]
        bases = [server.base_dir for server in box._all]
        results = box.run_many(["open('f', 'w').write('x')", "import os\nos.mkdir('d')\nopen('d/g','w')"] * 3,
                               progress=False)
        assert all(r.completed for r in results)
        assert all(os.listdir(base) == [] for base in bases)  # every run dir already gone
    assert all(process.poll() is not None for process in helpers)
    assert not any(os.path.exists(base) for base in bases)


def test_run_programs_keeps_input_order_across_workers():
    sources = [f"import time\ntime.sleep({0.05 * (i % 3)})\nassert {i} % 2 == 0\n" for i in range(8)]
    results = run_programs(sources, workers=2)
    assert [r.completed for r in results] == [i % 2 == 0 for i in range(8)]


def test_a_killed_helper_is_replaced(sandbox):
    server = sandbox._idle.get()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    sandbox._idle.put(server)
    lost = sandbox.run("pass")
    assert lost.status == "error" and not lost.completed
    assert not os.path.exists(server.base_dir)  # its run directories went with it
    _assert_still_works(sandbox)


@needs_root
def test_without_namespaces_the_subreaper_sweep_still_kills_setsid_double_forks():
    interval = _sleep_interval()
    with Sandbox(workers=1, namespaces=False) as box:
        result = box.run(_daemon(interval))
        looping = box.run("while True:\n    pass\n", limits=Limits(timeout=0.5))
        assert _leftovers(box) == []
    assert result.completed and "daemon up" in result.output
    assert {key: value for key, value in result.isolation.items() if isinstance(value, bool)} == {
        "network": False, "pid_namespace": False, "mount_namespace": False, "unprivileged_user": True,
        "read_only_host": False, "host_sockets_hidden": False, "harness_files_hidden": False,
        "user_namespaces_forbidden": True}
    assert _processes_matching(interval) == []
    assert looping.status == "timed out"

def test_a_helper_started_by_a_finished_worker_thread_keeps_serving():
    import threading

    with Sandbox(workers=1) as box:
        server = box._idle.get()
        server.process.kill()
        server.process.wait()
        box._idle.put(server)
        def work() -> None:
            box.run("pass")  # finds the helper dead and starts a new one from this thread
            assert box.run("pass").completed  # the new one is up before the thread ends

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        time.sleep(0.2)
        assert box.run("assert 2 + 2 == 4").completed  # the replacement outlived the thread that made it


SYSTEM_PYTHON = "/usr/bin/python3"


@needs_root
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="needs a Python that user nobody can run")
def test_without_root_a_user_namespace_gives_the_same_containment():
    """The helper run as an ordinary user (nobody here, as on a CI runner): namespaces come from a user
    namespace, capabilities are dropped, and a 'kill -9 -1' of the same user still reaches nothing."""
    probe = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "-U", "-r", "-n", "-p",
             "-f", "-m", "true"]
    try:
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            pytest.skip("this system gives ordinary users no user namespaces")
    except FileNotFoundError:
        pytest.skip("needs util-linux's setpriv and unshare to probe for user namespaces")
    interval = _sleep_interval()
    escape = f"/tmp/sandbox-escape-{uuid.uuid4().hex}"
    owned = tempfile.mkdtemp(prefix="accuracy-sandbox-test-", dir="/var/lib")
    os.chown(owned, 65534, 65534)  # the helper's own user may write here, but not its programs
    base = tempfile.mkdtemp(prefix="accuracy-sandbox-test-")
    os.chown(base, 65534, 65534)
    canary = subprocess.Popen(["sleep", "120"], user=65534, group=65534, extra_groups=[])
    control, theirs = socket.socketpair()
    server = subprocess.Popen([SYSTEM_PYTHON, "-I", "-S", str(SERVER), base, str(theirs.fileno())], user=65534,
                              group=65534, extra_groups=[], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              pass_fds=(theirs.fileno(),))
    theirs.close()
    hostile = _daemon(interval) + textwrap.dedent(f"""
        import ctypes, os, signal, subprocess
        print('umount', ctypes.CDLL(None).umount2(b'/tmp', 2), flush=True)  # -1: no capabilities left
        for path in ('{escape}', '{owned}/escaped'):
            try:
                open(path, 'w').write('escaped')
            except OSError as exc:
                print(exc, flush=True)
        subprocess.run(['sh', '-c', 'kill -9 -1'])
        os._exit(0)
    """)
    try:
        answers = [_raw_run(server, control, source, Limits(timeout=3.0))
                   for source in (hostile, "import math\nassert math.gcd(12, 18) == 6\n")]
        assert answers[0][0] != [("ready",)] and answers[1][0] == [("ready",)], answers
        hostile_end, fine_end = answers[0][1], answers[1][1]
        assert "daemon up" in hostile_end.output and "umount -1" in hostile_end.output
        assert {key: value for key, value in fine_end.isolation.items() if isinstance(value, bool)} == {
            "network": True, "pid_namespace": True, "mount_namespace": True, "unprivileged_user": False,
            "read_only_host": True, "host_sockets_hidden": True, "harness_files_hidden": True,
            "user_namespaces_forbidden": True}
        assert canary.poll() is None, "the program killed a process of its user outside the sandbox"
        assert _processes_matching(interval) == []
        assert not os.path.exists(escape) and os.listdir(owned) == []
        assert "Read-only file system" in hostile_end.output
        assert os.listdir(base) == []
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        control.close()
        canary.kill()
        canary.wait()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(owned, ignore_errors=True)


class _FakeServerIds:
    uid = gid = 65534


def _raw_run(process: subprocess.Popen, control: socket.socket, source: str, limits: Limits,
             drop: tuple[str, ...] = ()) -> tuple[list, object]:
    """One job through a helper by hand (its wire protocol): the replies the program sent, and its ending."""
    job = _job(source, None, limits, _FakeServerIds, "<program>")
    for key in drop:
        del job["limits"][key]
    calls_r, calls_w = os.pipe()
    replies_r, replies_w = os.pipe()
    _wire.write_frame(process.stdin.fileno(), _wire.encode(job))
    process.stdin.flush()
    socket.send_fds(control, [b"j"], [calls_r, replies_w])
    os.close(calls_r)
    os.close(replies_w)
    os.close(calls_w)
    replies = []
    with os.fdopen(replies_r, "rb") as stream:
        while (frame := _wire.read_frame(stream.fileno())) is not None:
            replies.append(_wire.decode(frame))
    return replies, _ending(_wire.decode(_wire.read_frame(process.stdout.fileno())))


def test_a_broken_request_is_an_error_result_not_a_hang(sandbox):
    server = sandbox._idle.get()
    try:
        replies, ending = _raw_run(server.process, server.control, "pass", Limits(),
                                   drop=("tmp_bytes", "cpu_seconds"))
    finally:
        sandbox._idle.put(server)
    assert replies == [] and ending.error and "KeyError" in ending.error
    _assert_still_works(sandbox)


# --- containment of the whole program (issue 15): each hostile program first proves it ran ---------


@needs_isolation
def test_a_host_unix_socket_under_run_is_out_of_reach(sandbox):
    folder = tempfile.mkdtemp(prefix="accuracy-sandbox-test-", dir="/run")
    os.chmod(folder, 0o777)
    path = os.path.join(folder, "host.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    os.chmod(path, 0o777)  # world-writable: only the hidden /run keeps the program away
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        program = textwrap.dedent(f"""
            import socket
            print('trying {path}', flush=True)
            client = socket.socket(socket.AF_UNIX)
            client.connect({path!r})
            client.sendall(b'escaped')
        """)
        result = sandbox.run(program)
        assert f"trying {path}" in result.output  # it ran, and tried
        assert result.status == "raised" and result.exception == "FileNotFoundError", result
        assert result.isolation["host_sockets_hidden"] is True
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


# Four processes of 200 MiB each (touched, so resident) under a 512 MiB limit for the whole program;
# each per-process limit alone would allow them all.
MEMORY_SPREAD = textwrap.dedent("""
    import os, time
    for _ in range(4):
        if os.fork() == 0:
            hoard = b'x' * (200 * 1024 * 1024)
            print('holding', len(hoard), flush=True)
            time.sleep(30)
            os._exit(0)
        time.sleep(0.5)  # one after another: the first ones get to hold theirs
    time.sleep(30)
""")


@needs_isolation
@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup-or-accounting", "accounting"])
def test_the_memory_limit_holds_for_all_processes_of_a_program_together(cgroups):
    limits = Limits(timeout=20.0, memory_bytes=512 * 1024**2)
    with Sandbox(workers=1, limits=limits, cgroups=cgroups) as box:
        result = box.run(MEMORY_SPREAD)
        assert _leftovers(box) == []
        _assert_still_works(box)
    assert 1 <= result.output.count("holding") < 4, result.output  # the hoarding ran, and was stopped
    assert result.status == "out of memory", result
    assert result.seconds < 15  # stopped for memory, well before the timeout
    assert result.isolation["memory"] == ("accounting" if not cgroups else result.isolation["memory"])


FORK_BOMB = textwrap.dedent("""
    import os, time
    said = False
    while True:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            if not said:
                print('bomb at its limit', flush=True)
                said = True
            time.sleep(0.01)
""")
NEEDS_PROCESSES = textwrap.dedent("""
    import subprocess, threading
    threads = [threading.Thread(target=sum, args=([1, 2],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert subprocess.run(['true']).returncode == 0
""")


@needs_isolation
def test_a_fork_bomb_leaves_programs_beside_it_their_processes():
    with Sandbox(workers=2, limits=Limits(timeout=4.0, processes=24)) as box:
        results = box.run_many([FORK_BOMB] + [NEEDS_PROCESSES] * 12, progress=False)
        assert _leftovers(box) == []
    bomb, others = results[0], results[1:]
    assert "bomb at its limit" in bomb.output and bomb.status == "timed out"
    assert [r.status for r in others] == ["completed"] * 12, [r.output for r in others if not r.completed]


@needs_isolation
def test_no_new_user_namespace_inside(sandbox):
    program = textwrap.dedent("""
        import ctypes, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        print('unshare', libc.unshare(0x10000000), ctypes.get_errno(), flush=True)
        print(subprocess.run(['unshare', '-U', 'true'], capture_output=True, text=True).returncode, flush=True)
    """)
    result = sandbox.run(program)
    assert result.completed, result.output
    assert "unshare -1 1" in result.output  # it tried, and got EPERM
    assert result.output.splitlines()[1] != "0"
    assert result.isolation["user_namespaces_forbidden"] is True


def test_a_hidden_folder_never_takes_the_programs_interpreter_with_it():
    # --problems /usr/lib/x.jsonl would lay an empty mount over /usr/lib: every import of the program gone.
    from accuracy.llm.sandbox import _linux

    stdlib = os.path.dirname(os.__file__)
    for needed in (stdlib, os.path.dirname(stdlib), sys.base_prefix, "/"):
        assert not _linux.hideable(needed), needed
    assert _linux.hideable(sys.prefix) is (sys.prefix != sys.base_prefix)
    assert _linux.hideable(os.path.join(tempfile.gettempdir(), "problems"))
