"""Endpoint preflight against fake (scripted) servers on 127.0.0.1: up, down, wrong model, flaky, and
what a vLLM server adds (served name, max_model_len, /tokenize). Real vLLM: tests/test_llm_suite.py."""

from __future__ import annotations

import re
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


class RawServer:
    """A fake server on 127.0.0.1 that answers every request with ``answer(conn)`` on the raw socket
    (garbage, a cut body, an endless one): what no well-behaved HTTP stub can send."""

    def __init__(self, answer):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

        def serve():
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                try:
                    conn.recv(65536)
                    answer(conn)
                except OSError:
                    pass
                finally:
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()


def _http(status: str, body: bytes):
    return lambda conn: conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


def _endless(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    for _ in range(1000):  # 64 MiB at most
        conn.sendall(b"[" * 65536)


@pytest.mark.parametrize("answer,said", [
    (lambda conn: conn.sendall(b"garbage\r\n\r\n"), "not serving: unreachable (BadStatusLine"),
    (_http("200 OK", b"[" * 100_000 + b"]" * 100_000), "did not answer like an OpenAI-compatible server"),
    (_endless, "not serving: an answer over 16 MiB"),
    (_http("401 Unauthorized", b'{"object": "error", "message": "Invalid API key", "code": 401}'),
     "HTTP 401 Unauthorized: Invalid API key"),
], ids=["garbage status line", "deeply nested json", "endless body", "vllm error body"])
def test_fake_hostile_models_endpoint_is_one_config_error(answer, said):
    """Each was a traceback (BadStatusLine, RecursionError), a swallowed error message, or (endless
    body) a minute of memory growth ending in a RecursionError."""
    server = RawServer(answer)
    with pytest.raises(ConfigError, match=r"^s.toml \[llm.base_url\]: .*" + re.escape(said)):
        check_endpoint("openai", [server.url], "", path="s.toml", timeout=3)
    server.sock.close()


def test_fake_models_card_with_a_boolean_context_is_no_context():
    server = RawServer(_http("200 OK", b'{"data": [{"id": "tiny", "max_model_len": true}, {"id": null}]}'))
    (probe,) = check_endpoint("openai", [server.url], "", timeout=3)
    assert probe.model == "tiny" and probe.models == ["tiny"] and probe.max_model_len is None
    server.sock.close()


@pytest.mark.parametrize("count", ['"5"', "-100", "true"])
def test_fake_tokenize_count_that_is_no_count_is_refused(tmp_path, count):
    """A count that is a string, negative or a boolean passed (a string silently skipped the whole check)."""
    server = RawServer(_http("200 OK", b'{"count": %s}' % count.encode()))
    with pytest.raises(OSError, match=r"token count of .* for the sample at .*add.jsonl:1 \(not a count\)"):
        check_prompts_fit(server.url, "tiny", samples(tmp_path, "q", "r"), max_out_len=4, max_model_len=64, timeout=3)
    server.sock.close()


def test_fake_tokenize_error_body_is_surfaced(tmp_path):
    server = RawServer(_http("400 Bad Request", b'{"object": "error", "message": "prompt too long", "code": 400}'))
    with pytest.raises(OSError, match="HTTP 400 Bad Request: prompt too long"):
        check_prompts_fit(server.url, "tiny", samples(tmp_path, "q"), max_out_len=4, max_model_len=64, timeout=3)
    server.sock.close()
