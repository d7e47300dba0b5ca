"""HumanEval scoring: the real 164 problems through the real sandbox, pass@k, bad input, the CLI."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from accuracy.errors import InputError
from accuracy.llm import humaneval
from accuracy.llm.humaneval import (
    Problem,
    first_code_block,
    load_problems,
    pass_at_k,
    program_for,
    read_samples,
    score_samples,
)
from accuracy.llm.sandbox import Limits
from tests.test_sandbox import _processes_matching, full_isolation  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def problems() -> dict[str, Problem]:
    return load_problems()


def _write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accuracy", "humaneval", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_default_problem_set_is_humaneval(problems):
    assert len(problems) == 164
    assert problems["HumanEval/0"].entry_point == "has_close_elements"
    assert all(p.canonical_solution for p in problems.values())


def test_all_164_canonical_solutions_pass(problems):
    samples = [{"task_id": task_id, "completion": p.canonical_solution} for task_id, p in problems.items()]
    result = score_samples(problems, samples, k=(1,))
    failing = [(r.task_id, r.run.status, r.run.output[-300:]) for r in result.results if not r.passed]
    assert failing == []
    assert result.pass_at_k == {"pass@1": 1.0}
    assert result.counts == {"passed": 164, "failed": 0, "timed out": 0, "error": 0}
    assert result.tasks_attempted == result.tasks_total == 164


def test_wrong_solutions_fail(problems):
    samples = [{"task_id": task_id, "completion": "    return None\n"} for task_id in problems]
    result = score_samples(problems, samples, k=(1,))
    assert [r.task_id for r in result.results if r.passed] == []
    assert result.pass_at_k == {"pass@1": 0.0}
    assert result.counts["failed"] + result.counts["error"] == 164


SLEEPER = f"300.{os.getpid()}{uuid.uuid4().int % 10**6}"  # a sleep that names this test run
HOSTILE = {
    "endless loop": "    while True:\n        pass\n",
    "memory hog": "    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 24))\n",
    "output flood": "    while True:\n        print('spam' * 256)\n",
    "fork that outlives": textwrap.indent(textwrap.dedent("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp('sleep', ['sleep', 'SLEEPER'])
            os._exit(0)
        return None
    """).replace("SLEEPER", SLEEPER), "    "),
    "exit code zero": "    import os\n    os._exit(0)\n",
    "exit code at import": "    pass\nimport os\nos._exit(0)\n",
    "printed success": "    print('passed'); print('{\"passed\": true}')\n    import sys; sys.stdout.flush()\n"
                       "    import os; os._exit(0)\n",
    "kill the parent": textwrap.indent(textwrap.dedent("""
        import os, signal
        for target in (os.getppid(), -1, 0):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)
    """), "    "),
    "write outside": "    open('/tmp/../../etc/hostile-humaneval', 'w').write('x')\n    return True\n",
    "open a socket": "    import socket\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    return True\n",
    "rig the exit": "    raise SystemExit(0)\n",
}


@pytest.mark.usefixtures("full_isolation")  # 'kill -1' and friends are only harmless when contained
def test_hostile_completions_are_contained_and_never_pass(problems):
    task = "HumanEval/0"
    samples = [{"task_id": task, "completion": completion} for completion in HOSTILE.values()]
    samples.append({"task_id": task, "completion": problems[task].canonical_solution})
    result = score_samples(problems, samples, k=(1,), workers=2,
                           limits=Limits(timeout=2.0, memory_bytes=256 * 1024**2))
    outcome = {name: (r.passed, r.run.status) for name, r in zip(HOSTILE, result.results)}
    assert [name for name, (passed, _) in outcome.items() if passed] == [], outcome
    assert outcome["endless loop"][1] == "timed out"
    assert result.results[-1].passed  # the harness kept working through all of it
    assert result.pass_at_k["pass@1"] == pytest.approx(1 / len(samples))  # only the canonical one
    assert not os.path.exists("/etc/hostile-humaneval")
    assert _processes_matching(SLEEPER) == []


def test_pass_at_k_is_the_unbiased_estimator(problems):
    good = problems["HumanEval/2"].canonical_solution
    samples = [{"task_id": "HumanEval/2", "completion": c} for c in (good, "    return -1.0\n", "    return 0\n")]
    samples += [{"task_id": "HumanEval/4", "completion": problems["HumanEval/4"].canonical_solution}] * 3
    result = score_samples(problems, samples, k=(1, 2, 5))
    assert [r.completion_id for r in result.results] == [0, 1, 2, 0, 1, 2]
    expected_at_2 = ((1 - math.comb(2, 2) / math.comb(3, 2)) + 1.0) / 2
    assert result.pass_at_k == pytest.approx({"pass@1": (1 / 3 + 1) / 2, "pass@2": expected_at_2})
    assert result.skipped_k == [5]
    assert result.tasks_attempted == 2


def test_pass_at_k_skips_k_larger_than_samples():
    scores, skipped = pass_at_k([10, 10], [0, 10], (1, 10, 100))
    assert scores == pytest.approx({"pass@1": 0.5, "pass@10": 0.5})
    assert skipped == [100]


def test_the_sandboxed_program_is_prompt_and_completion_without_the_tests(problems):
    program = program_for(problems["HumanEval/0"], "    return False\n")
    assert program == problems["HumanEval/0"].prompt + "    return False\n\n"
    assert "def check" not in program and "check(" not in program


def test_custom_problem_file_gz_and_plain(tmp_path):
    problem = {"task_id": "Mine/0", "prompt": "def twice(x):\n", "entry_point": "twice",
               "test": "def check(candidate):\n    assert candidate(3) == 6\n"}
    plain = tmp_path / "problems.jsonl"
    _write_jsonl(plain, [problem])
    packed = tmp_path / "problems.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        problems = load_problems(path)
        result = score_samples(problems, [{"task_id": "Mine/0", "completion": "    return 2 * x\n"},
                                          {"task_id": "Mine/0", "completion": "    return x + 2\n"}], k=(1,))
        assert [r.passed for r in result.results] == [True, False]


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"task_id": "HumanEval/0", "completion": "x"}', "{not json"], "line 2"),
        (['{"task_id": "HumanEval/0", "completion": "x"}', '{"task_id": "Other/9", "completion": "x"}'],
         "unknown task_id 'Other/9'"),
        (['{"task_id": "HumanEval/0"}'], "missing 'completion'"),
        (['[1, 2]'], "expected a JSON object"),
        ([""], "no samples"),
    ],
)
def test_bad_samples_name_the_line(tmp_path, problems, lines, message):
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        read_samples(path, problems)
    assert message in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("missing", ["test", "entry_point"])
def test_problem_without_test_or_entry_point(tmp_path, missing):
    record = {"task_id": "P/0", "prompt": "def f():\n", "test": "def check(c): pass\n", "entry_point": "f"}
    good = dict(record, task_id="P/1")
    del record[missing]
    path = tmp_path / "problems.jsonl"
    _write_jsonl(path, [good, record])
    with pytest.raises(InputError, match=f"line 2.*missing '{missing}'"):
        load_problems(path)


def test_cli_scores_writes_json_and_gates(tmp_path, problems):
    samples = tmp_path / "samples.jsonl"
    _write_jsonl(samples, [{"task_id": "HumanEval/0", "completion": problems["HumanEval/0"].canonical_solution},
                           {"task_id": "HumanEval/1", "completion": "    return []\n"}])
    out = tmp_path / "result.json"
    ran = _cli("--samples", str(samples), "--k", "1", "--json", str(out))
    assert ran.returncode == 0, ran.stderr
    assert "pass@1 0.5000" in ran.stdout
    document = json.loads(out.read_text())
    assert document["pass_at_k"] == {"pass@1": 0.5}
    assert [(r["task_id"], r["passed"], r["status"]) for r in document["results"]] == [
        ("HumanEval/0", True, "passed"), ("HumanEval/1", False, "failed")]
    gated = _cli("--samples", str(samples), "--k", "1", "--min-pass-at-1", "0.75")
    assert gated.returncode == 1 and "below" in gated.stdout
    assert _cli("--samples", str(samples), "--k", "1", "--min-pass-at-1", "0.5").returncode == 0


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/0", "comp\n')
    ran = _cli("--samples", str(samples))
    assert ran.returncode == 2
    assert ran.stderr.strip().count("\n") == 0 and "line 2" in ran.stderr and str(samples) in ran.stderr
    assert "Traceback" not in ran.stderr
    bad_k = _cli("--samples", str(samples), "--k", "0")
    assert bad_k.returncode == 2 and "--k" in bad_k.stderr
    missing = _cli("--samples", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_opencompass_predictions_are_scored_like_opencompass_post_processes_them(tmp_path, problems):
    solution = problems["HumanEval/0"].prompt + problems["HumanEval/0"].canonical_solution
    predictions = {
        "0": {"origin_prompt": "...", "prediction": f"Here you go:\n```python\n{solution}```\nDone.",
              "gold": "HumanEval/0"},
        "1": {"origin_prompt": "...", "prediction": ["def incr_list(l):\n    return l\n",
                                                     "```\ndef incr_list(l):\n    return [x + 1 for x in l]\n```"],
              "gold": "HumanEval/42"},
    }
    path = tmp_path / "openai_humaneval.json"
    path.write_text(json.dumps(predictions))
    samples = read_samples(path, problems)
    assert [s.task_id for s in samples] == ["HumanEval/0", "HumanEval/42", "HumanEval/42"]
    assert samples[0].completion == solution
    result = score_samples(problems, samples, k=(1,))
    assert [r.passed for r in result.results] == [True, False, True]
    assert result.pass_at_k["pass@1"] == pytest.approx((1.0 + 0.5) / 2)
    assert first_code_block("  plain text") == "plain text"
    path.write_text(json.dumps({"0": {"prediction": "x", "gold": "HumanEval/999"}}))
    with pytest.raises(InputError, match=r"\[0.gold\].*unknown task_id"):
        read_samples(path, problems)


@pytest.mark.parametrize("gold", [["a"], {"id": 1}, 7, None])
def test_opencompass_predictions_with_a_non_string_gold_name_file_and_key(tmp_path, problems, gold):
    path = tmp_path / "openai_humaneval.json"
    path.write_text(json.dumps({"0": {"prediction": "x", "gold": "HumanEval/0"}, "1": {"prediction": "x", "gold": gold}}))
    with pytest.raises(InputError) as caught:
        read_samples(path, problems)
    message = str(caught.value)
    assert str(path) in message and "[1.gold]" in message and "task_id string" in message


def test_library_samples_without_a_completion_are_bad_input(problems):
    with pytest.raises(InputError, match=r"sample 1.*'completion'"):
        score_samples(problems, [{"task_id": "HumanEval/0", "completion": ""}, {"task_id": "HumanEval/0"}])


# --- forging a pass from inside the program (issue 15): each first proves it ran ----------------------

# Finds every long hex string in its frames and heap (where the old per-run secret lived), writes each
# to every descriptor it may have (the old report channel was one), then ends at once: a pass, had
# any of them decided the verdict.
HUNT = textwrap.dedent("""
    def _hunt():
        import gc, os, re, sys
        found = set()
        frame = sys._getframe()
        while frame is not None:
            for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                if isinstance(value, str) and re.fullmatch('[0-9a-f]{32,}', value):
                    found.add(value)
            frame = frame.f_back
        for value in gc.get_objects():
            if isinstance(value, dict):
                for item in list(value.values()):
                    if isinstance(item, str) and re.fullmatch('[0-9a-f]{32,}', item):
                        found.add(item)
        print('hunted', flush=True)
        for fd in range(3, 64):
            for secret in found:
                try:
                    os.write(fd, (secret + '\\n').encode())
                except OSError:
                    pass
        os._exit(0)
""")
# A trace hook that takes over whichever of check and the candidate is called first: it hunts the
# secret from there and ends the program (the old design let it pass every problem with return None).
SETTRACE_HOOK = HUNT + textwrap.dedent("""
    import sys
    def _hook(frame, event, arg):
        if event == 'call' and frame.f_code.co_name in ('check', ENTRY):
            print('hook fired in', frame.f_code.co_name, flush=True)
            _hunt()
        return None
    sys.settrace(_hook)
    print('hook installed', flush=True)
""")
ALWAYS_EQUAL = textwrap.dedent("""
    class Liar(int):
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        __hash__ = int.__hash__
    class LiarList(list):
        def __eq__(self, other):
            return True
    print('liars made', flush=True)
""")


def _forge(problems, prelude: str, body: str, tasks=None) -> list:
    """Every task (or ``tasks``) with a completion that runs ``prelude`` at import and returns via ``body``."""
    tasks = tasks or list(problems)
    samples = [{"task_id": t, "completion": f"{body}\n{prelude.replace('ENTRY', repr(problems[t].entry_point))}"}
               for t in tasks]
    return score_samples(problems, samples, k=(1,)).results


def test_a_secret_hunt_in_frames_and_heap_finds_nothing_that_passes(problems):
    results = _forge(problems, HUNT + "_hunt()\n", "    return None")
    assert all("hunted" in r.run.output for r in results)  # it ran in every program
    assert [r.task_id for r in results if r.passed] == []


def test_a_settrace_hook_with_return_none_scores_zero_of_164(problems):
    results = _forge(problems, SETTRACE_HOOK, "    return None")
    assert all("hook installed" in r.run.output and "hook fired in" in r.run.output for r in results)
    assert len(results) == 164 and [r.task_id for r in results if r.passed] == []


def test_an_int_or_list_that_equals_everything_arrives_as_a_plain_value(problems):
    liar_int = _forge(problems, ALWAYS_EQUAL, "    return Liar(0)", ["HumanEval/53", "HumanEval/13"])
    liar_list = _forge(problems, ALWAYS_EQUAL, "    return LiarList()", ["HumanEval/0", "HumanEval/29"])
    for result in liar_int + liar_list:
        assert "liars made" in result.run.output
        assert (result.passed, result.run.status) == (False, "failed"), result.run


def test_a_value_that_cannot_cross_is_an_error_not_a_pass(problems):
    results = _forge(problems, "print('made an object', flush=True)", "    return object()", ["HumanEval/53"])
    assert "made an object" in results[0].run.output
    assert results[0].run.status == "error" and "cannot cross" in results[0].run.reason


@pytest.mark.usefixtures("full_isolation")
def test_a_fork_bomb_next_to_correct_samples_leaves_them_passing(problems):
    bomb = textwrap.indent(textwrap.dedent("""
        import os, time
        print('bombing', flush=True)
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
            except OSError:
                time.sleep(0.01)
    """), "    ")
    tasks = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/12", "HumanEval/53", "HumanEval/35"]
    samples = [{"task_id": "HumanEval/0", "completion": bomb}]
    samples += [{"task_id": t, "completion": problems[t].canonical_solution} for t in tasks] * 2
    result = score_samples(problems, samples, k=(1,), workers=2, limits=Limits(timeout=3.0, processes=24))
    assert "bombing" in result.results[0].run.output and result.results[0].run.status == "timed out"
    assert [r.run.status for r in result.results[1:]] == ["passed"] * 12


def test_a_check_that_never_returns_is_stopped_at_the_timeout(tmp_path):
    problems_file = tmp_path / "problems.jsonl"
    _write_jsonl(problems_file, [{
        "task_id": "Slow/0", "prompt": "def f(x):\n", "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate(1) == 2\n    while True:\n        pass\n",
    }])
    problems = load_problems(problems_file)
    result = score_samples(problems, [{"task_id": "Slow/0", "completion": "    return x + 1\n"}], k=(1,),
                           limits=Limits(timeout=1.0))
    run = result.results[0].run
    assert run.calls == 1  # the check ran, the candidate answered
    assert run.status == "timed out" and run.seconds < 10


def test_a_crashing_or_endless_candidate_fails_cleanly_and_exceptions_keep_their_builtin_type(tmp_path):
    problems_file = tmp_path / "problems.jsonl"
    test = ("def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n        pass\n"
            "    else:\n        raise AssertionError('no ValueError')\n    assert candidate(2) == 4\n")
    _write_jsonl(problems_file, [{"task_id": "T/0", "prompt": "def f(x):\n", "entry_point": "f", "test": test}])
    problems = load_problems(problems_file)
    completions = {
        "right": "    if x < 0:\n        raise ValueError(x)\n    return x * 2\n",
        "crash": "    import os\n    os._exit(3)\n",
        "endless": "    while True:\n        pass\n",
        "swallowed": "    import os\n    if x < 0:\n        raise ValueError(x)\n    os._exit(0)\n",
    }
    result = score_samples(problems, [{"task_id": "T/0", "completion": c} for c in completions.values()], k=(1,),
                           limits=Limits(timeout=1.5))
    statuses = {name: r.run.status for name, r in zip(completions, result.results)}
    assert statuses == {"right": "passed", "crash": "error", "endless": "timed out", "swallowed": "error"}


def test_a_check_that_passes_a_function_gets_it_called_back(tmp_path):
    problems_file = tmp_path / "problems.jsonl"
    test = "def check(candidate):\n    assert candidate([3, 1, 2], lambda x: -x) == [3, 2, 1]\n"
    _write_jsonl(problems_file, [{"task_id": "K/0", "prompt": "def sort_by(xs, key):\n", "entry_point": "sort_by",
                                  "test": test}])
    problems = load_problems(problems_file)
    result = score_samples(problems, [{"task_id": "K/0", "completion": "    return sorted(xs, key=key)\n"},
                                      {"task_id": "K/0", "completion": "    return sorted(xs)\n"}], k=(1,))
    assert [r.run.status for r in result.results] == ["passed", "failed"]


@pytest.mark.parametrize("flags", [("--timeout", "inf"), ("--timeout", "nan"), ("--timeout", "1e300"),
                                   ("--timeout", "-1"), ("--memory-mb", "1e15"), ("--memory-mb", "nan")])
def test_cli_refuses_unbounded_limits_in_one_line(tmp_path, flags):
    samples = tmp_path / "samples.jsonl"
    _write_jsonl(samples, [{"task_id": "HumanEval/0", "completion": "    return False\n"}])
    ran = _cli("--samples", str(samples), *flags)
    assert ran.returncode == 2 and flags[0] in ran.stderr
    assert ran.stderr.strip().count("\n") == 0 and "Traceback" not in ran.stderr


@pytest.mark.parametrize("name", ["samples.jsonl", "predictions.json"])
def test_cli_deeply_nested_samples_are_one_line(tmp_path, name):
    samples = tmp_path / name
    samples.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    ran = _cli("--samples", str(samples))
    assert ran.returncode == 2 and str(samples) in ran.stderr and "nested" in ran.stderr
    assert ran.stderr.strip().count("\n") == 0 and "Traceback" not in ran.stderr


def test_a_stop_iteration_raised_by_the_candidate_cannot_end_the_checks_loop_early(tmp_path):
    # Rebuilt as a real StopIteration, it would end ``map`` in the harness's check: no assertion ran, "passed".
    problems_file = tmp_path / "problems.jsonl"
    test = "def check(candidate):\n    for answer in map(candidate, [1, 2, 3]):\n        assert answer == 99\n"
    _write_jsonl(problems_file, [{"task_id": "S/0", "prompt": "def f(x):\n", "entry_point": "f", "test": test}])
    problems = load_problems(problems_file)
    completions = ["    raise StopIteration('done')\n", "    raise StopAsyncIteration\n", "    return 99\n"]
    result = score_samples(problems, [{"task_id": "S/0", "completion": c} for c in completions], k=(1,))
    runs = [r.run for r in result.results]
    assert [run.status for run in runs] == ["error", "error", "passed"]
    assert runs[0].calls == 1 and runs[0].exception == "CandidateError"


@pytest.mark.parametrize("case", ["samples fifo", "problems fifo", "samples huge integer", "problems huge integer"])
def test_cli_a_named_pipe_or_a_huge_integer_is_one_line_not_a_hang_or_a_traceback(tmp_path, case):
    which, kind = case.split(" ", 1)
    good = tmp_path / "samples.jsonl"
    _write_jsonl(good, [{"task_id": "HumanEval/0", "completion": "    return False\n"}])
    bad = tmp_path / f"bad_{which}.jsonl"
    if kind == "fifo":
        os.mkfifo(bad)  # nobody ever writes: a reader that opens it waits forever
    else:
        bad.write_text('{"task_id": "HumanEval/0", "completion": "", "n": ' + "1" * 5000 + "}\n")
    args = ("--samples", str(bad)) if which == "samples" else ("--samples", str(good), "--problems", str(bad))
    ran = _cli(*args)  # _cli's timeout turns a hang into a failure
    assert ran.returncode == 2 and str(bad) in ran.stderr
    assert ran.stderr.strip().count("\n") == 0 and "Traceback" not in ran.stderr


def test_workers_beyond_the_samples_start_no_idle_helpers(tmp_path, problems, monkeypatch):
    started = []
    real_init = humaneval.Sandbox.__init__

    def counting_init(self, *args, workers=None, **kwargs):
        started.append(workers)
        real_init(self, *args, workers=workers, **kwargs)

    monkeypatch.setattr(humaneval.Sandbox, "__init__", counting_init)
    result = score_samples(problems, [{"task_id": "HumanEval/0", "completion": "    return False\n"}], k=(1,),
                           workers=500)
    assert started == [1] and result.results[0].run.status == "failed"
    ran = _cli("--samples", str(tmp_path / "absent.jsonl"), "--workers", "100000")
    assert ran.returncode == 2 and "--workers" in ran.stderr


ANSWER_KEY = """    arguments = list(__import__("sys")._getframe().f_locals.values())  # before any other local
    import gzip, json, sys
    task = sys._getframe().f_code.co_filename.strip("<>")
    print("looking up the canonical solution of", task, flush=True)
    for line in gzip.open(PROBLEMS, "rt"):
        problem = json.loads(line)
        if problem["task_id"] == task:
            found = {}
            exec(problem["prompt"] + problem["canonical_solution"], found)
            return found[problem["entry_point"]](*arguments)
"""


@pytest.mark.usefixtures("full_isolation")
def test_a_program_cannot_read_the_answers_from_the_problem_set_on_disk(problems):
    # The problem file (tests and canonical solutions) lay in the read-only host view: one generic
    # completion that looks its task up there and runs the canonical solution passed every problem.
    completion = ANSWER_KEY.replace("PROBLEMS", repr(str(humaneval.default_problems_path())))
    tasks = ["HumanEval/0", "HumanEval/2", "HumanEval/53"]
    result = score_samples(problems, [{"task_id": t, "completion": completion} for t in tasks], k=(1,))
    for sample in result.results:
        assert "looking up the canonical solution of " + sample.task_id in sample.run.output  # it tried
        assert sample.run.status == "error" and sample.run.isolation["harness_files_hidden"] is True
    assert result.pass_at_k["pass@1"] == 0.0
