"""Calls across the sandbox boundary (``Session``, ``_wire``): plain data only, rebuilt as exact builtin
objects on the harness side, and whatever the program does with the protocol ends its session, never
the harness."""

from __future__ import annotations

import math
import textwrap

import pytest

from accuracy.llm.sandbox import CandidateError, Limits, Sandbox, SessionOver


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1, limits=Limits(timeout=2.0, memory_bytes=512 * 1024**2)) as box:
        yield box

ECHO = textwrap.dedent("""
    import collections
    class Liar(int):
        def __eq__(self, other):
            return True
    def echo(value):
        return value
    def liars():
        return [Liar(5), collections.Counter('aab'), collections.OrderedDict(x=1), True]
    def sort_by(values, key):
        return sorted(values, key=key)
    def unsendable():
        return object()
""")


def test_values_cross_as_exact_builtin_objects(sandbox):
    values = [None, True, 0, -(2**200), 1.5, float("inf"), -0.0, 2 + 3j, "tëxt\udcff", b"\x00\xff",
              [1, (2, 3)], (), {"a": [1], (1, 2): {3}}, {frozenset({1})}, frozenset()]
    with sandbox.session(ECHO, "echo") as session:
        for value in values:
            back = session.call(value)
            assert back == value and type(back) is type(value)
        nan = session.call(float("nan"))
        assert type(nan) is float and math.isnan(nan)
    assert session.over is None and session.ending.error is None


def test_what_the_program_returns_loses_every_behaviour_of_its_own(sandbox):
    with sandbox.session(ECHO, "liars") as session:
        liar, counter, ordered, flag = session.call()
    assert type(liar) is int and liar == 5 and liar != 6  # its always-true __eq__ stayed behind
    assert type(counter) is dict and counter == {"a": 2, "b": 1}
    assert type(ordered) is dict and type(flag) is bool


def test_a_value_that_cannot_cross_ends_the_session(sandbox):
    with sandbox.session(ECHO, "unsendable") as session:
        with pytest.raises(SessionOver):
            session.call()
        with pytest.raises(SessionOver):
            session.call()  # and it stays ended
    assert "cannot cross" in session.over


def test_a_function_argument_is_called_back_in_the_harness_with_plain_data(sandbox):
    seen = []

    def key(value):
        seen.append(type(value))
        return -value

    with sandbox.session(ECHO, "sort_by") as session:
        assert session.call([3, 1, 2], key) == [3, 2, 1]
        with pytest.raises(ZeroDivisionError):
            session.call([0, 1], lambda value: 1 / value)
    assert seen == [int, int, int]


def test_garbage_on_the_reply_channel_is_a_protocol_error(sandbox):
    program = "import os\ndef f():\n    os.write(4, b'\\xff' * 64)\n    return 1\n"
    with sandbox.session(program, "f") as session, pytest.raises(SessionOver):
        session.call()
    assert "protocol" in session.over or "oversized" in session.over


HOSTILE = textwrap.dedent("""
    import os
    class Evil(Exception):
        def __str__(self):
            raise SystemExit(0)
        def __eq__(self, other):
            return True
    def stop():
        raise StopIteration('the loop ends here')
    def evil():
        raise Evil()
    def hang_up():
        os.close(3)
        os.close(4)
        return 1
    def callback_to_nothing():
        import _wire
        _wire.write_frame(4, _wire.encode(('callback', 0, (1,))))
        return 1
""")


def test_an_exception_that_would_steer_the_harness_comes_back_as_candidate_error(sandbox):
    with sandbox.session(HOSTILE, "stop") as session, pytest.raises(CandidateError, match="StopIteration"):
        session.call()
    with sandbox.session(HOSTILE, "evil") as session, pytest.raises(Exception) as raised:
        session.call()  # its __str__ raised SystemExit in the program: described there, never here
    assert type(raised.value) is Exception and session.over is None


@pytest.mark.parametrize("entry,reason", [("hang_up", "ended"), ("callback_to_nothing", "callback to nothing")])
def test_a_program_that_breaks_the_call_protocol_ends_its_session(sandbox, entry, reason):
    with sandbox.session(HOSTILE, entry) as session, pytest.raises(SessionOver):
        session.call()
    assert reason in session.over and session.ending.error is None


FLOODS = textwrap.dedent("""
    import os, struct
    P = 2**61 - 1  # n and n + P hash alike: numbers hash without a secret
    def _number(value):
        raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return b"i" + struct.pack("<I", len(raw)) + raw
    def _reply(tag, items, count):
        # Written by hand (building the set here would cost the program the same quadratic time).
        payload = b"t" + struct.pack("<I", 2) + b"s" + struct.pack("<I", 2) + b"ok" + tag + struct.pack("<I", count)
        payload += b"".join(items)
        data = struct.pack("<I", len(payload)) + payload
        while data:
            data = data[os.write(4, data):]
    def colliding_set():
        _reply(b"S", [_number(1 + i * P) for i in range(100_000)], 100_000)
    def colliding_keys():
        _reply(b"d", [_number(x) for i in range(100_000) for x in (1 + i * P, i)], 100_000)
    def colliding_list():
        return [complex(1000003 * k, -k) for k in range(1, 100_000)]
    def plain_big():
        return [[0] * 100_000, set(range(100_000)), {i: i for i in range(100_000)}]
""")


@pytest.mark.parametrize("entry", ["colliding_set", "colliding_list", "colliding_keys"])
def test_a_hash_collision_flood_is_refused_before_anything_hashes_it(sandbox, entry):
    # Built into a set or dict here (by the decoder, or by a check doing set(candidate(...))), 100,000
    # colliding numbers cost minutes of C with the interpreter lock held: every thread of the harness stops.
    with sandbox.session(FLOODS, entry) as session, pytest.raises(SessionOver):
        session.call()
    assert "collision flood" in session.over


def test_big_values_without_collisions_still_cross(sandbox):
    with sandbox.session(FLOODS, "plain_big") as session:
        zeros, numbers, table = session.call()
    assert zeros == [0] * 100_000 and numbers == set(range(100_000)) and table == {i: i for i in range(100_000)}


def test_an_integer_too_big_for_arithmetic_in_the_harness_does_not_cross(sandbox):
    # 16 million bits: one multiplication of two such numbers in a check costs seconds, a few of them hours.
    program = "def huge(bits):\n    return 1 << bits\n"
    with sandbox.session(program, "huge") as session:
        assert session.call(100_000) == 1 << 100_000
        with pytest.raises(SessionOver):
            session.call(16 * 1024 * 1024)
    assert "integer" in session.over
