"""Suite files: kind detection and errors that name the file and the key."""

import pytest

from accuracy.config import discover_suites, load_suite
from accuracy.errors import ConfigError


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_kind_and_name(tmp_path):
    suite = load_suite(write(tmp_path, '[suite]\nname = "x"\n[scores]\ncandidate = "a.csv"\n'))
    assert (suite.kind, suite.name) == ("scores", "x")
    assert load_suite(write(tmp_path, '[llm]\n', "other.toml")).name == "other"


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty"),
        ("[pipeline]\n[scores]\n", "exactly one of"),
        ("[other]\n", "exactly one of"),
        ("[scores\n", "malformed TOML"),
        ('suite = 3\n[scores]\n', "suite"),
    ],
)
def test_bad_suite_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(write(tmp_path, text))
    assert "s.toml" in str(info.value)


def test_table_reader_types_and_unknown_keys(tmp_path):
    suite = load_suite(write(tmp_path, '[scores]\ncandidate = 3\nflag = true\nrel = 1\n'))
    table = suite.table("scores")
    with pytest.raises(ConfigError, match=r"\[scores.candidate\]: must be a string"):
        table.string("candidate")
    with pytest.raises(ConfigError, match="got a boolean"):
        table.number("flag")
    assert table.number("rel") == 1.0 and isinstance(table.number("rel"), float)
    with pytest.raises(ConfigError, match=r"\[scores.flag\]: unknown key"):
        table.reject_unknown(("candidate", "rel"))


def test_discover_skips_non_suite_toml(tmp_path):
    write(tmp_path, '[scores]\ncandidate = "a"\n', "a.toml")
    write(tmp_path, '[acl_build_options]\ninput_shape = "x:1"\n', "converter.toml")
    assert [p.name for p in discover_suites([tmp_path])] == ["a.toml"]
    with pytest.raises(ConfigError, match="no such suite or folder"):
        discover_suites([tmp_path / "missing"])
