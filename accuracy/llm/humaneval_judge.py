"""Judge one HumanEval sample: the program runs in the sandbox, its tests run here.

The sandboxed program is the problem's prompt and the model's completion, nothing else: it never sees
the tests and holds nothing that decides the verdict (no secret, no report descriptor). The problem's
``check`` (trusted, from the problem set) runs in the harness with the prompt's own helpers
(``poly``, ``encode_cyclic`` ...: the prompt's top-level code minus the function to complete, taken
out with ``ast``); its ``candidate`` (and the entry point's name) is a proxy whose every call
crosses into the program and back as plain data, rebuilt as exact builtin objects. So no object of
the program's can answer ``==``, and no hook of the program's can reach ``check``.

The check is trusted but may be slow: it shares the sample's wall-clock budget and is interrupted
(an asynchronous exception in its thread) when that runs out.
"""

from __future__ import annotations

import ast
import ctypes
import threading
import time
from dataclasses import asdict, dataclass, field
from types import CodeType

from accuracy.errors import InputError
from accuracy.llm.sandbox import Limits, Sandbox, SessionOver


class CheckTimeout(BaseException):
    """Raised inside a check that ran past the sample's time."""


@dataclass
class Verdict:
    """How one sample fared: ``status`` is passed, failed, timed out or error."""

    status: str
    reason: str
    exception: str | None = None
    calls: int = 0
    output: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    signal: int | None = None
    seconds: float | None = None
    isolation: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


_compiled: dict[tuple[str, str, str, str], CodeType] = {}
_compiled_lock = threading.Lock()


def trusted_code(task_id: str, prompt: str, test: str, entry_point: str) -> CodeType:
    """The harness-side module of a problem: the prompt's top-level statements except the definition
    of ``entry_point``, then the tests. Parsed with ``ast`` and compiled once per problem."""
    key = (task_id, prompt, test, entry_point)
    with _compiled_lock:
        if key in _compiled:
            return _compiled[key]
    try:
        try:
            prompt_tree = ast.parse(prompt)
        except SyntaxError:  # a prompt that ends at the signature, the body left to the model
            prompt_tree = ast.parse(prompt.rstrip("\n") + "\n    pass\n")
        test_tree = ast.parse(test)
    except SyntaxError as exc:
        raise InputError(f"the problem's prompt or test is not valid Python: {exc.msg} (line {exc.lineno})",
                         where=task_id) from None
    body = [node for node in prompt_tree.body
            if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)]
    module = ast.Module(body=body + test_tree.body, type_ignores=[])
    code = compile(module, f"<{task_id} tests>", "exec")
    if not any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in test_tree.body):
        raise InputError("the problem's test defines no check(candidate) function", where=task_id)
    with _compiled_lock:
        _compiled[key] = code
    return code


class _Watchdog:
    """Interrupts the calling thread with ``CheckTimeout`` at ``deadline`` unless disarmed first."""

    def __init__(self, deadline: float) -> None:
        self.thread_id = threading.get_ident()
        self.fired = False
        self._armed = True
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                           ctypes.py_object(CheckTimeout))

    def __enter__(self) -> _Watchdog:  # noqa: PYI034 - Self needs Python 3.11
        self._timer.start()
        return self

    def __exit__(self, *_exc) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


def _run_check(code: CodeType, entry_point: str, session, deadline: float) -> tuple[str, BaseException | None]:
    """Run the tests against the proxy: ("returned" | "raised" | "check timeout", the exception)."""

    def candidate(*args):
        return session.call(*args)

    namespace = {"__name__": "__humaneval_check__"}
    watchdog = _Watchdog(deadline)
    try:
        with watchdog:
            exec(code, namespace)  # noqa: S102 - trusted: the problem set's prompt helpers and tests
            namespace[entry_point] = candidate
            namespace["check"](candidate)
    except CheckTimeout as exc:
        return "check timeout", exc
    except BaseException as exc:  # noqa: BLE001 - a failing test, the candidate's exception, SessionOver
        if watchdog.fired:
            return "check timeout", exc
        return "raised", exc
    if watchdog.fired:  # the check swallowed the interruption
        return "check timeout", None
    return "returned", None


def judge(sandbox: Sandbox, *, task_id: str, prompt: str, test: str, entry_point: str, completion: str,
          limits: Limits | None = None) -> Verdict:
    """Run ``prompt + completion`` in a sandbox session and the problem's check against it here."""
    limits = limits or sandbox.limits
    code = trusted_code(task_id, prompt, test, entry_point)
    started = time.monotonic()
    outcome, error = "not run", None
    with sandbox.session(prompt + completion + "\n", entry_point, limits=limits, filename=f"<{task_id}>") as session:
        if session.over is None:
            outcome, error = _run_check(code, entry_point, session, started + limits.timeout)
    ending = session.ending
    common = {"calls": session.calls, "output": ending.output, "output_truncated": ending.output_truncated,
              "exit_code": ending.exit_code, "signal": ending.signal, "seconds": round(time.monotonic() - started, 4),
              "isolation": ending.isolation}
    if ending.error:
        return Verdict("error", f"sandbox failure: {ending.error}", **common)
    if ending.memory_exceeded:
        return Verdict("error", "over its memory limit: the whole process tree was killed", **common)
    if ending.timed_out or outcome == "check timeout":
        return Verdict("timed out", "wall-clock timeout: the whole process tree was killed", **common)
    if session.raised is not None:
        name = session.raised[0]
        return Verdict("error", f"the program raised {name} before its tests ran", name, **common)
    if session.over is not None:
        return Verdict("error", session.over, **common)
    if outcome == "returned":
        return Verdict("passed", "check returned", **common)
    name = type(error).__name__
    if isinstance(error, AssertionError):
        return Verdict("failed", "a test assertion failed", name, **common)
    if isinstance(error, SessionOver):  # only reached when session.over was cleared, which never happens
        return Verdict("error", str(error), **common)
    return Verdict("error", f"the tests raised {name}", name, **common)
