"""Importing a pipeline entry: every failure is a ConfigError naming the suite and pipeline.entry."""

from __future__ import annotations

import numpy as np
import pytest

from accuracy.errors import ConfigError, InputError
from accuracy.pipelines.entry import check_outputs, load_entry


def test_file_entry_and_neighbour_imports(tmp_path):
    (tmp_path / "helper.py").write_text("FACTOR = 3\n")
    (tmp_path / "pipe.py").write_text("from helper import FACTOR\ndef run(models, inputs):\n    return {'y': inputs['x'] * FACTOR}\n")
    run = load_entry("pipe.py:run", base=tmp_path)
    assert run({}, {"x": np.array(2)})["y"] == 6


def test_module_entry():
    assert load_entry("numpy:asarray", base=".") is np.asarray


@pytest.mark.parametrize("files, spec, words", [
    ({}, "pipe.py", "must look like"),
    ({}, "missing.py:run", "entry file not found"),
    ({"pipe.py": "x = 1\n\nraise ValueError('boom')\n"}, "pipe.py:run", "importing pipe.py failed (line 3): ValueError: boom"),
    ({"pipe.py": "def go(): pass\n"}, "pipe.py:run", "has no attribute 'run'"),
    ({"pipe.py": "run = 3\n"}, "pipe.py:run", "is not callable"),
    ({}, "no_such_module_xyz:run", "cannot import 'no_such_module_xyz'"),
])
def test_entry_errors(tmp_path, files, spec, words):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    suite = tmp_path / "suite.toml"
    with pytest.raises(ConfigError) as caught:
        load_entry(spec, base=tmp_path, suite_path=suite)
    assert words in str(caught.value) and str(suite) in str(caught.value) and "[pipeline.entry]" in str(caught.value)


def test_outputs_must_be_a_dict_of_arrays():
    assert check_outputs({"y": [1, 2]}, entry="e")["y"].tolist() == [1, 2]
    with pytest.raises(InputError, match="must return a non-empty dict"):
        check_outputs([np.zeros(2)], entry="e")
