"""Endpoint preflight against fake (scripted) servers on 127.0.0.1: up, down, wrong model, flaky."""

from __future__ import annotations

import time

import pytest

from accuracy.errors import ConfigError
from accuracy.llm.endpoint import check_endpoint, fetch
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
