"""Every command's ``--help`` opens with what it is for, in a user's words, and an example."""

from __future__ import annotations

import pytest

from accuracy.cli import COMMANDS, main


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_for_users_with_examples(capsys):
    text = _help(capsys)
    assert "registry" not in text and "module" not in text  # no developer docstring
    assert text.splitlines()[2].startswith("Prove that inference moved")
    assert "accuracy demo" in text and "accuracy gate suites/" in text and "exit codes: 0 pass" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_says_what_it_is_for_and_shows_an_example(capsys, command):
    text = _help(capsys, command)
    usage_end = text.index("\n\n")
    description = text[usage_end + 2:]
    summary = COMMANDS[command][1]
    assert description.startswith(summary[0].upper() + summary[1:])
    example = description.split("example:\n", 1)[1].splitlines()[0].strip()
    assert example.startswith(f"accuracy {command}")
    assert "see above" not in text


def test_bisect_help_explains_where_localize_files_go(capsys):
    text = " ".join(_help(capsys, "bisect").split())
    assert "beside --json, else beside --report, else under the cache folder" in text


def test_baseline_record_help_says_what_it_stores_with_examples(capsys):
    text = _help(capsys, "baseline", "record")
    assert "Store what later runs are compared against" in text
    assert "accuracy baseline record suites/tiny-sd-img2img/suite.toml --force" in text
