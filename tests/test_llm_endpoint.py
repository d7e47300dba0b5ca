"""Endpoint preflight against fake (scripted) servers on 127.0.0.1: up, down, wrong model, flaky, and
what a vLLM server adds (served name, max_model_len, /tokenize). Real vLLM: tests/test_llm_suite.py."""

from __future__ import annotations

import time

import pytest

from accuracy.errors import ConfigError
from accuracy.llm.endpoint import Probe, check_endpoint, check_prompts_fit, context_limit, fetch
from accuracy.llm.opencompass.custom_prompts import PromptSample
from tests.fixtures.llm_servers import free_port

MODELS = {"object": "list", "data": [{"id": "tiny", "object": "model"}]}


def test_fake_openai_server_passes_and_lists_its_models(stub):
    server = stub({("GET", "/v1/models"): [(200, MODELS)]})
    probes = check_endpoint("openai", [f"{server.url}/v1"], "tiny")
    assert probes[0].models == ["tiny"]


def test_fake_server_not_serving_the_model_is_named(stub):
    server = stub({("GET", "/v1/models"): [(200, MODELS)]})
    with pytest.raises(ConfigError) as caught:
        check_endpoint("openai", [f"{server.url}/v1"], "llama-7b", path="s.toml")
    assert "[llm.model]" in str(caught.value) and "serves: tiny" in str(caught.value)


def test_an_unreachable_endpoint_fails_fast_naming_the_key():
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        check_endpoint("openai", [url], "tiny", path="s.toml")
    assert time.monotonic() - start < 5  # a refused connection is not retried
    assert str(caught.value).startswith("s.toml [llm.base_url]") and "not serving" in str(caught.value)


def test_fake_replicas_each_checked_and_the_bad_one_named(stub):
    good = stub({("GET", "/v1/models"): [(200, MODELS)]})
    bad = stub({("GET", "/v1/models"): [(200, {"not": "openai"})]})
    with pytest.raises(ConfigError, match=r"\[llm.base_urls\[1\]\].*OpenAI-compatible"):
        check_endpoint("openai", [f"{good.url}/v1", f"{bad.url}/v1"], "tiny")


def test_fake_server_5xx_is_retried_with_backoff_then_succeeds(stub):
    server = stub({("GET", "/v1/models"): [(503, {}), (502, {}), (200, MODELS)]})
    start = time.monotonic()
    assert fetch(f"{server.url}/v1/models", retries=2, backoff=0.2) == MODELS
    assert len(server.requests) == 3
    assert time.monotonic() - start >= 0.2 + 0.4  # 0.2 s, then 0.4 s


def test_fake_server_4xx_is_not_retried(stub):
    server = stub({("GET", "/v1/models"): [(401, {"error": "bad key"})]})
    with pytest.raises(OSError, match="HTTP 401"):
        fetch(f"{server.url}/v1/models", retries=3, backoff=0.01)
    assert len(server.requests) == 1


def test_fake_vllm_generate_servers_are_checked_on_health(stub):
    server = stub({("GET", "/health"): [(200, {})]})
    assert check_endpoint("vllm", [server.url], "any")[0].models == []
    down = stub({("GET", "/health"): [(500, {})]})
    with pytest.raises(ConfigError, match="HTTP 500"):
        check_endpoint("vllm", [down.url], "any", timeout=1.0)


VLLM_MODELS = {"object": "list", "data": [{"id": "tiny-lm", "object": "model", "owned_by": "vllm",
                                           "root": "/models/tiny", "max_model_len": 256}]}


def test_fake_vllm_models_card_gives_the_context_and_the_model_folder(stub):
    server = stub({("GET", "/v1/models"): [(200, VLLM_MODELS)]})
    (probe,) = check_endpoint("openai", [f"{server.url}/v1"], "tiny-lm")
    assert (probe.model, probe.max_model_len, probe.root) == ("tiny-lm", 256, "/models/tiny")


def test_fake_server_without_a_model_name_in_the_suite_uses_the_one_it_serves(stub):
    server = stub({("GET", "/v1/models"): [(200, VLLM_MODELS)]})
    assert check_endpoint("openai", [f"{server.url}/v1"], "")[0].model == "tiny-lm"
    several = stub({("GET", "/v1/models"): [(200, {"data": [{"id": "a"}, {"id": "b"}]})]})
    with pytest.raises(ConfigError, match=r"\[llm.model\]: .* serves 2 models \(a, b\); name one"):
        check_endpoint("openai", [f"{several.url}/v1"], "", path="s.toml")


def test_context_limit_is_the_smallest_replicas():
    probes = [Probe("a", ["m"], "m", 512), Probe("b", ["m"], "m", 256), Probe("c", ["m"], "m", None)]
    assert context_limit(probes) == 256
    assert context_limit([Probe("c", ["m"], "m", None)]) is None


def samples(tmp_path, *prompts):
    return [PromptSample("add", tmp_path / "add.jsonl", line, prompt) for line, prompt in enumerate(prompts, 1)]


def test_fake_vllm_tokenize_finds_the_prompt_that_cannot_fit(stub, tmp_path):
    count = lambda body: {"count": len(body["messages"][0]["content"]), "max_model_len": 256}
    server = stub({("POST", "/tokenize"): [(200, count)]})
    with pytest.raises(ConfigError) as caught:
        check_prompts_fit(f"{server.url}/v1", "tiny-lm", samples(tmp_path, "x" * 10, "x" * 253, "x" * 300),
                          max_out_len=4, max_model_len=256)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'add.jsonl'} [line 2]: sample of dataset 'add'")
    assert "253 prompt tokens + max_out_len 4 > max_model_len 256 (1 more samples do not fit" in message
    _, path, body = server.requests[0]
    assert path == "/tokenize" and body["add_generation_prompt"] and body["model"] == "tiny-lm"
    assert check_prompts_fit(f"{server.url}/v1", "tiny-lm", samples(tmp_path, "x" * 252), max_out_len=4,
                             max_model_len=256) == 252  # exactly full fits


def test_fake_server_without_tokenize_is_not_checked(stub, tmp_path):
    server = stub({("GET", "/v1/models"): [(200, MODELS)]})  # no /tokenize: 404
    assert check_prompts_fit(f"{server.url}/v1", "tiny", samples(tmp_path, "q"), max_out_len=4,
                             max_model_len=8) is None
    assert len(server.requests) == 1  # one probe, not one per sample
