"""One program's run seen from the harness: calls across the boundary and how the program ended.

A ``Session`` talks to the program process directly over two pipes (``_wire`` frames): it waits for
the source to have run, sends each call's arguments as plain data and rebuilds the answer as exact
builtin objects. Anything unexpected from the program (a malformed or oversized frame, a value that
cannot cross, silence past the deadline, the end of the pipe) ends the session with ``over`` set,
which no caller can undo.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import select
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accuracy.llm.sandbox import _wire
from accuracy.llm.sandbox._wire import WireError

if TYPE_CHECKING:
    from accuracy.llm.sandbox import Limits, _Server

GRACE = 10.0  # past a program's timeout, the harness stops waiting for its keeper


@dataclass
class Ending:
    """How a program's process tree ended, as its keeper saw it."""

    timed_out: bool = False
    memory_exceeded: bool = False
    exit_code: int | None = None
    signal: int | None = None
    seconds: float | None = None
    output: str = ""
    output_truncated: bool = False
    error: str | None = None  # the sandbox itself failed (setup, helper)
    isolation: dict = field(default_factory=dict)



class SessionOver(BaseException):
    """The program can answer no more calls (timed out, died, broke the protocol, returned a value
    that cannot cross). Raised out of ``Session.call``; ``Session.over`` keeps the reason even where
    a caller's bare ``except:`` swallows it."""


class CandidateError(Exception):
    """The called function raised an exception that has no builtin counterpart here."""


# Exceptions that steer control flow on this side rather than report an error: a StopIteration
# raised inside ``map``/``filter``/``next`` quietly ends the harness's loop, so every assertion
# after it would be skipped and the check would pass. They come back as ``CandidateError``.
_CONTROL_FLOW = (StopIteration, StopAsyncIteration)


def _exception(name: str, message: str) -> Exception:
    """The program's exception, rebuilt on this side: the builtin class of that name, else
    ``CandidateError``. Never an object of the program's, and never one that ends an iteration."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, _CONTROL_FLOW):
        with contextlib.suppress(Exception):  # a constructor that wants other arguments
            return kind(message)
    return CandidateError(f"{name}: {message}")


class Session:
    """One program, run once, whose function ``entry`` the harness may call with plain data."""

    def __init__(self, server: _Server, calls_w: int, replies_r: int, limits: Limits) -> None:
        self._server = server
        self._calls_w = calls_w
        self._replies_r = replies_r
        self._buffer = bytearray()
        self.deadline = time.monotonic() + limits.timeout + GRACE
        self.over: str | None = None  # why the program can answer no more, once that is so
        self.raised: tuple[str, str] | None = None  # the source's own exception (name, message)
        self.calls = 0
        self.ending: Ending | None = None  # set once the program has ended (``Sandbox.session``)

    def _stop(self, reason: str) -> SessionOver:
        if self.over is None:
            self.over = reason
        return SessionOver(self.over)

    def _read_reply(self) -> object:
        """The next reply frame, decoded; ``SessionOver`` at end of file, past the deadline or on a
        malformed or oversized frame."""
        while True:
            if len(self._buffer) >= 4:
                size = int.from_bytes(self._buffer[:4], "little")
                if size > _wire.MAX_FRAME:
                    raise self._stop("the program sent an oversized reply")
                if len(self._buffer) >= 4 + size:
                    payload = bytes(self._buffer[4:4 + size])
                    del self._buffer[:4 + size]
                    try:
                        return _wire.decode(payload)
                    except WireError as exc:
                        raise self._stop(f"the program broke the protocol ({exc})") from None
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies_r], [], [], left)[0]:
                raise self._stop("no answer before the deadline")
            chunk = os.read(self._replies_r, 1 << 20)
            if not chunk:
                raise self._stop("the program ended")
            self._buffer += chunk

    def start(self) -> None:
        """Wait until the source has run. ``SessionOver`` when it raised (``raised`` says what) or
        the program never got there."""
        reply = self._read_reply()
        if reply == ("ready",):
            return
        if isinstance(reply, tuple) and len(reply) == 3 and reply[0] == "raised" and all(
                isinstance(part, str) for part in reply[1:]):
            self.raised = (reply[1], reply[2])
            raise self._stop(f"the program raised {reply[1]}")
        if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "setup":
            raise self._stop(f"sandbox setup failed: {reply[1]}")
        raise self._stop("the program broke the protocol (no ready message)")

    def call(self, *args: object) -> object:
        """Call the program's ``entry`` with ``args`` (plain data); its return value as exact builtin
        objects. An exception it raised comes back as ``_exception``; ``SessionOver`` when it cannot
        answer (then ``over`` says why)."""
        if self.over is not None:
            raise SessionOver(self.over)
        self.calls += 1
        functions: list = []
        try:
            payload = _wire.encode(("call", args), functions)
        except WireError as exc:
            raise self._stop(f"an argument cannot be sent to the program: {exc}") from None
        self._send(payload)
        while True:
            reply = self._read_reply()
            if not (isinstance(reply, tuple) and len(reply) == 3 and reply[0] == "callback"):
                break
            index, arguments = reply[1], reply[2]
            if not (isinstance(index, int) and 0 <= index < len(functions) and isinstance(arguments, tuple)):
                raise self._stop("the program broke the protocol (a callback to nothing)")
            self._send(self._run_callback(functions[index], arguments))
        if isinstance(reply, tuple) and reply:
            if reply[0] == "ok" and len(reply) == 2:
                return reply[1]
            if reply[0] == "raised" and len(reply) == 3 and all(isinstance(part, str) for part in reply[1:]):
                raise _exception(reply[1], reply[2])
            if reply[0] == "unsupported" and len(reply) == 2 and isinstance(reply[1], str):
                raise self._stop(f"the function returned a value that cannot cross: {reply[1]}")
        raise self._stop("the program broke the protocol")

    def _send(self, payload: bytes) -> None:
        try:
            _wire.write_frame(self._calls_w, payload)
        except OSError:
            raise self._stop("the program ended") from None

    @staticmethod
    def _run_callback(function, arguments: tuple) -> bytes:
        """Run one of the harness's own functions (a key function the tests passed) on plain data
        from the program; its result or exception goes back as plain data."""
        try:
            return _wire.encode(("return", function(*arguments)))
        except Exception as exc:  # noqa: BLE001 - the callback's failure is the program's to see
            return _wire.encode(("raise", type(exc).__name__, str(exc)[:300]))

    def finish(self) -> Ending:
        """Hang up (the program exits) and wait for its keeper's account of how it ended."""
        for fd in (self._calls_w, self._replies_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        answer = self._server.answer(max(1.0, self.deadline - time.monotonic() + GRACE))
        return _ending(answer)


def _ending(answer: dict) -> Ending:
    error = answer.get("server_error") or answer.get("setup_error")
    return Ending(
        timed_out=bool(answer.get("timed_out")),
        memory_exceeded=bool(answer.get("memory_exceeded")),
        exit_code=answer.get("exit_code"),
        signal=answer.get("signal"),
        seconds=answer.get("seconds"),
        output=str(answer.get("output", "")),
        output_truncated=bool(answer.get("output_truncated")),
        error=None if error is None else str(error),
        isolation=dict(answer.get("isolation") or {}),
    )


class _DeadSession:
    """What ``Sandbox.session`` yields when the helper could not even take the job."""

    def __init__(self, ending: Ending) -> None:
        self.ending = ending
        self.over = ending.error
        self.raised = None
        self.calls = 0

    def call(self, *_args: object) -> object:
        raise SessionOver(self.over)
