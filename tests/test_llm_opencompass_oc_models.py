"""The OpenCompass model classes our configs use, against scripted servers on 127.0.0.1:
vLLM's /generate API, retries with backoff, and failed requests recorded as marked predictions."""

from __future__ import annotations

import importlib
import time

import pytest

from accuracy.llm.opencompass import predictions

pytest.importorskip("opencompass")


@pytest.fixture(scope="module")
def oc_models():
    return importlib.import_module("accuracy.llm.opencompass.oc_models")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A local tokenizer (OpenAISDK counts prompt tokens; without one it would try the hub)."""
    from tests.fixtures.tiny_lm import build_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(folder)
    return str(folder)


def completion(text):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "tiny",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}


def test_failed_prefix_is_shared_with_the_reader(oc_models):
    assert oc_models.FAILED_PREFIX == predictions.FAILED_PREFIX
    assert predictions.classify(oc_models.failed_prediction("HTTP 500")) == "failed"


def test_vllm_generate_strips_the_echoed_prompt_and_retries_5xx(stub, oc_models):
    echo = lambda body: {"text": [body["prompt"] + " B"]}
    server = stub({("POST", "/generate"): [(503, {}), (200, echo)]})
    model = oc_models.VLLMGenerateAPI(url=f"{server.url}/generate", retry=2, query_per_second=100, temperature=0.0)
    start = time.monotonic()
    assert model.generate(["Question: 1+1=?"], max_out_len=4) == [" B"]
    assert time.monotonic() - start >= 0.3  # one backoff (0.5 s +/- 25 %)
    (_, _, first), (_, _, second) = server.requests
    assert first == second == {"prompt": "Question: 1+1=?", "max_tokens": 4, "temperature": 0.0, "n": 1}


def test_vllm_generate_marks_a_request_that_keeps_failing(stub, oc_models):
    server = stub({("POST", "/generate"): [(500, {})]})
    model = oc_models.VLLMGenerateAPI(url=f"{server.url}/generate", retry=1, query_per_second=100)
    (answer,) = model.generate(["q"], max_out_len=4)
    assert predictions.classify(answer) == "failed" and "HTTP 500" in answer
    assert len(server.requests) == 2  # the first try and one retry


def test_vllm_generate_does_not_retry_a_bad_request(stub, oc_models):
    server = stub({("POST", "/generate"): [(400, {"error": "too long"})]})
    model = oc_models.VLLMGenerateAPI(url=f"{server.url}/generate", retry=3, query_per_second=100)
    assert predictions.classify(model.generate(["q"], max_out_len=4)[0]) == "failed"
    assert len(server.requests) == 1


def test_openai_sdk_retries_5xx_then_answers(stub, oc_models, tokenizer_dir):
    server = stub({("POST", "/v1/chat/completions"): [(500, {}), (502, {}), (200, completion("C"))]})
    model = oc_models.AccuracyOpenAISDK(path="tiny", openai_api_base=f"{server.url}/v1", key="k", retry=2,
                                        query_per_second=100, temperature=0.0, tokenizer_path=tokenizer_dir)
    assert model.generate(["Question: 1+2=?"], max_out_len=4) == ["C"]
    assert len(server.requests) == 3


def test_openai_sdk_marks_a_request_that_keeps_failing(stub, oc_models, tokenizer_dir):
    server = stub({("POST", "/v1/chat/completions"): [(503, {})]})
    model = oc_models.AccuracyOpenAISDK(path="tiny", openai_api_base=f"{server.url}/v1", key="k", retry=1,
                                        query_per_second=100, temperature=0.0, tokenizer_path=tokenizer_dir)
    (answer,) = model.generate(["q"], max_out_len=4)
    assert predictions.classify(answer) == "failed"
    assert len(server.requests) == 2


VLLM_400 = {"error": {"message": "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
                      "type": "BadRequestError", "param": "max_tokens", "code": 400}}


def test_openai_sdk_failed_prediction_carries_the_fake_vllm_error_message(stub, oc_models, tokenizer_dir):
    server = stub({("POST", "/v1/chat/completions"): [(400, VLLM_400)]})
    model = oc_models.AccuracyOpenAISDK(path="tiny", openai_api_base=f"{server.url}/v1", key="k", retry=2,
                                        query_per_second=100, temperature=0.0, tokenizer_path=tokenizer_dir)
    (answer,) = model.generate(["q"], max_out_len=4)
    assert len(server.requests) == 1  # a 400 is not retried
    assert predictions.failure_reason(answer) == ("HTTP 400: max_tokens must be at least 1, got 0. "
                                                  "(parameter=max_tokens, value=0)")


def test_vllm_generate_failed_prediction_carries_the_fake_servers_message(stub, oc_models):
    server = stub({("POST", "/generate"): [(400, {"detail": "prompt too long"})]})
    model = oc_models.VLLMGenerateAPI(url=f"{server.url}/generate", retry=0, query_per_second=100)
    (answer,) = model.generate(["q"], max_out_len=4)
    assert predictions.failure_reason(answer) == "HTTP 400: prompt too long"


@pytest.mark.parametrize(
    ("body", "message"),
    [({"error": {"message": "m1"}}, "m1"), ({"message": "m2"}, "m2"), ({"detail": "m3"}, "m3"),
     (b'{"error": {"message": "m4"}}', "m4"), (b"plain text", "plain text"), (b"", None), ({}, None)],
)
def test_server_message_reads_the_usual_error_bodies(oc_models, body, message):
    assert oc_models.server_message(body) == message


def test_openai_sdk_a_prompt_over_max_seq_len_is_a_failed_request_saying_so(stub, oc_models, tokenizer_dir):
    """Prompts of OpenCompass's own dataset configs are built inside OpenCompass: with max_seq_len
    capped to the server's max_model_len, one too long fails there, with its reason, and is not sent."""
    server = stub({("POST", "/v1/chat/completions"): [(200, completion("C"))]})
    model = oc_models.AccuracyOpenAISDK(path="tiny", openai_api_base=f"{server.url}/v1", key="k", retry=2,
                                        max_seq_len=16, query_per_second=100, tokenizer_path=tokenizer_dir)
    (answer,) = model.generate(["x" * 40], max_out_len=4)
    assert "exceeds max_seq_len (16)" in predictions.failure_reason(answer)
    assert server.requests == []
