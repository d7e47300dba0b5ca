"""Where the LLM end-to-end tests find vLLM, and what happens without it: CI fails, elsewhere a skip."""

from __future__ import annotations

import pytest

from tests.fixtures import llm_servers


@pytest.fixture
def no_vllm(monkeypatch, tmp_path):
    monkeypatch.delenv("ACCURACY_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(llm_servers, "REPO", tmp_path)  # a checkout without .venv-vllm


def test_without_vllm_ci_fails_instead_of_skipping(no_vllm, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs the real vLLM server: .*install-vllm.sh"):
        llm_servers.require_vllm()


def test_without_vllm_elsewhere_the_test_skips_with_the_hint(no_vllm, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="run .ci/install-vllm.sh"):
        llm_servers.require_vllm()


def test_the_interpreter_comes_from_the_variable_then_the_repo_venv(no_vllm, monkeypatch, tmp_path):
    assert llm_servers.vllm_python() is None
    python = tmp_path / ".venv-vllm" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert llm_servers.vllm_python() == str(python)
    monkeypatch.setenv("ACCURACY_VLLM_PYTHON", "/opt/vllm/bin/python")
    assert llm_servers.vllm_python() == "/opt/vllm/bin/python"
