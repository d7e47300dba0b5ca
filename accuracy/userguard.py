"""The guard around user code (a pipeline entry, its imports): whatever it does, the verdict survives.

A pipeline entry is the user's Python, run in our process. It may call ``sys.exit(0)`` (or
``os._exit``/``posix._exit``, refused while user code runs and, in the CLI, until its verdict's exit,
except in processes it forks), raise
``KeyboardInterrupt`` or anything else; none of that may end a gate run, lose its JSON, or turn a
failing release into exit 0. ``guarded`` turns every way out of user code into a ``UserCodeError``
(an ``InputError``: the suite is recorded as "error", exit 2) — except a real Ctrl-C, which still
stops the run: a SIGINT handler marks that the interrupt came from the terminal, not from the code.
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from accuracy.errors import AccuracyError, InputError

T = TypeVar("T")
_NOT_USER = (str(Path(__file__).resolve().parent) + "/", sysconfig.get_paths()["stdlib"] + "/",
             sysconfig.get_paths()["purelib"] + "/", sysconfig.get_paths()["platlib"] + "/")
_sigint = {"received": False}
_ran = {"user_code": False}


class UserCodeError(InputError):
    """User code stopped the run (``sys.exit``, ``KeyboardInterrupt``, an exception); ``original``
    is what it raised, ``how`` the short form (``ValueError: boom``, ``sys.exit(0)``)."""

    def __init__(self, original: BaseException, *, what: str, path: str | Path | None = None,
                 where: str | None = None):
        self.original = original
        self.how = _how(original)
        super().__init__(f"{what} {self.how}{_where(original)}" + _EXIT_HINT * isinstance(original, SystemExit),
                         path=path, where=where)


def _on_sigint(signum: int, frame: Any) -> None:
    _sigint["received"] = True
    raise KeyboardInterrupt


def watch_interrupts() -> None:
    """Mark real Ctrl-Cs (SIGINT), so a ``KeyboardInterrupt`` raised by user code can be told apart.

    Only in the main thread, and only over Python's default handler (a host such as pytest or a
    notebook that installed its own keeps it; there, a user-raised ``KeyboardInterrupt`` counts as
    a real one)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def real_interrupt() -> bool:
    """True once a SIGINT reached this process through ``watch_interrupts``' handler (or when no
    handler of ours is installed, so nothing can be told apart)."""
    return _sigint["received"] or signal.getsignal(signal.SIGINT) is not _on_sigint


_EXIT_HINT = "; user code must return (or raise), never exit the process"


class ProcessExit(SystemExit):
    """``os._exit(code)`` called by user code inside ``guarded`` (it would end the process at once,
    with no verdict, no JSON and the user's exit code)."""


class Terminated(SystemExit):
    """SIGTERM while user code ran inside ``guarded`` (``signal.raise_signal(SIGTERM)`` or
    ``os.kill(os.getpid(), SIGTERM)`` by the code, or sent from outside): by default it would end
    the process at once, with no verdict and no JSON."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(-signum)


def _how(exc: BaseException) -> str:
    if isinstance(exc, Terminated):
        return "received SIGTERM (from itself or from outside)"
    if isinstance(exc, ProcessExit) and isinstance(exc.code, str):
        return f"tried to be {exc.code}"
    if isinstance(exc, ProcessExit):
        return f"called os._exit({exc.code!r})"
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    message = str(exc).strip().splitlines()
    return f"raised {type(exc).__name__}{': ' + message[0] if message else ''}"


@contextmanager
def guarded(what: str, *, path: str | Path | None = None, where: str | None = None) -> Iterator[None]:
    """Run the body as user code: ``AccuracyError`` passes through, a real Ctrl-C too; everything
    else (``SystemExit`` of any code included) becomes a ``UserCodeError`` naming ``what``."""
    watch_interrupts()
    _ran["user_code"] = True
    refused = _refuse_exits()
    # what user code may change under the harness's feet: the working folder (a relative --json would
    # be written elsewhere) and the standard streams (the verdict printed into the user's buffer)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY) if os.path.isdir(".") else None
    streams = (sys.stdin, sys.stdout, sys.stderr)
    # SIGTERM becomes an exception while the code runs (main thread only; a handler of the host's is kept)
    sigterm = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if sigterm:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except AccuracyError:
        raise
    except KeyboardInterrupt as exc:
        if real_interrupt():
            raise
        raise UserCodeError(exc, what=what, path=path, where=where) from None
    except BaseException as exc:  # noqa: BLE001 -- user code may raise anything, SystemExit included
        raise UserCodeError(exc, what=what, path=path, where=where) from None
    finally:
        if refused and not _exits["held"]:
            _allow_exits()
        if sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdin, sys.stdout, sys.stderr = streams
        if cwd is not None:
            os.fchdir(cwd)
            os.close(cwd)


_exits: dict[str, Any] = {"real": None, "exec": None, "held": False}


def _refuse_exits() -> bool:
    """``os._exit`` (and ``posix._exit``, the same function under its own name) raise ``ProcessExit``
    in this process (a child it forks exits as always). False when already refused."""
    import posix

    if _exits["real"] is not None:
        return False
    real_exit, owner = posix._exit, os.getpid()

    def _exit(code: int) -> None:
        if os.getpid() != owner:  # a child the user's code forked exits as it always would
            real_exit(code)
        raise ProcessExit(code)

    def _refuse_exec(name: str) -> Callable[..., None]:
        real_exec = getattr(posix, name)

        def _exec(path: Any, *args: Any) -> None:
            if os.getpid() != owner:  # a forked child may become another program
                real_exec(path, *args)
            raise ProcessExit(f"replaced by os.{name}({str(path)[:60]!r}, ...)")

        return _exec

    _exits["real"] = real_exit
    _exits["exec"] = {name: getattr(posix, name) for name in ("execv", "execve")}
    os._exit = posix._exit = _exit
    for name in _exits["exec"]:  # os.execl/execlp/execvp... all end in these two
        setattr(os, name, _refuse_exec(name))
        setattr(posix, name, getattr(os, name))
    return True


def _allow_exits() -> Callable[[int], None]:
    import posix

    real_exit = _exits["real"] or posix._exit
    os._exit = posix._exit = real_exit
    for name, real_exec in (_exits.get("exec") or {}).items():
        setattr(os, name, real_exec)
        setattr(posix, name, real_exec)
    _exits["real"], _exits["exec"] = None, None
    return real_exit


def hold_exits() -> None:
    """For a process that ends with a verdict (the CLI): once user code has run, ``os._exit`` stays
    refused until ``exit_process`` (a thread the user's code left running cannot end the gate with
    exit 0 between two suites)."""
    _exits["held"] = True


def exit_process(code: int) -> None:
    """End the process with ``code`` when user code ran in it: its ``atexit`` handlers run with
    ``os._exit`` still refused, its objects' ``__del__`` never run, and nothing it left behind can
    turn the verdict's exit code into another (an ``os._exit(0)`` registered with ``atexit`` made a
    failing gate exit 0). Otherwise a plain ``SystemExit``."""
    if not _ran["user_code"]:
        raise SystemExit(code)
    import atexit

    _refuse_exits()
    try:
        atexit._run_exitfuncs()  # each handler's exception (SystemExit included) is printed, not obeyed
    except BaseException:  # noqa: BLE001, S110 - nothing a handler does may change the code
        pass
    real_exit = _allow_exits()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    real_exit(code)


def call_guarded(function: Callable[..., T], *args: Any, what: str, path: str | Path | None = None,
                 where: str | None = None, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` under ``guarded``."""
    with guarded(what, path=path, where=where):
        return function(*args, **kwargs)


def _where(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost frame outside this package and installed libraries."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if "site-packages" not in frame.filename and not frame.filename.startswith("<")
              and not str(Path(frame.filename).resolve()).startswith(_NOT_USER)]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
