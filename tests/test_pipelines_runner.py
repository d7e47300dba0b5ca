"""``PipelineRunner``: a backend option the suite got wrong is reported at the suite's own key."""

from __future__ import annotations

import pytest

from accuracy.cli import main
from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.errors import ConfigError
from accuracy.pipelines.runner import PipelineRunner
from tests.fixtures.tiny_sd import SUITE, chain_pipeline

BAD_OPTIONS = [
    ('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nintra_op_num_threads = "four"\n',
     "reference.intra_op_num_threads"),
    ('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nsession_options = 3\n', "reference.session_options"),
    ('backend = "onnxruntime-fp16"\n', 'backend = "onnxruntime-fp16"\ninter_op_num_threads = -2\n',
     "candidate.inter_op_num_threads"),
    ('backend = "onnxruntime-fp16"\n', 'backend = "onnxruntime-fp16"\nproviders = ["NoSuchExecutionProvider"]\n',
     "candidate.providers"),
]


@pytest.mark.parametrize(("old", "new", "key"), BAD_OPTIONS, ids=[key for _, _, key in BAD_OPTIONS])
def test_bad_backend_option_names_the_suite_and_its_key(tmp_path, old, new, key):
    suite = chain_pipeline(tmp_path, hazard=False, suite_text=SUITE.replace(old, new, 1))
    runner = PipelineRunner(load_pipeline_spec(load_suite(suite)))
    with pytest.raises(ConfigError) as caught:
        runner.run({"mid": "candidate"})
    assert caught.value.path == str(suite) and caught.value.where == key


def test_gate_reports_a_bad_option_on_one_line_and_exits_2(tmp_path, capsys):
    old, new, key = BAD_OPTIONS[0]
    suite = chain_pipeline(tmp_path, hazard=False, suite_text=SUITE.replace(old, new, 1))
    assert main(["gate", str(suite)]) == 2
    captured = capsys.readouterr()
    named = [line for line in captured.out.splitlines() if f"{suite} [{key}]: must be a whole number" in line]
    assert len(named) == 1 and "Traceback" not in captured.out + captured.err


def test_fresh_session_reopens_only_a_session_that_has_run(tmp_path):
    runner = PipelineRunner(load_pipeline_spec(load_suite(chain_pipeline(tmp_path, hazard=False))))
    opened = runner.session("mid", "candidate")
    assert runner.fresh_session("mid", "candidate") is opened  # never run: as fresh as a reopened one
    runner.run({"mid": "candidate"})
    assert opened.runs > 0 and runner.fresh_session("mid", "candidate") is not opened
    runner.close()
