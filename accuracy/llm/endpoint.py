"""Preflight for a served model: is the endpoint up, which model does it serve, and does every prompt fit?

Checked before OpenCompass starts, so a typo in a URL costs seconds, not a run. Requests here are
retried on 5xx, 429 and timeouts with exponential backoff; a refused connection is not retried
(nothing is listening). During the run, retries belong to OpenCompass's model classes
(``oc_models``: the ``openai`` client retries 408/429/5xx/timeouts with backoff ``retry`` times).

vLLM's OpenAI-compatible server says more than the OpenAI API requires, and preflight uses it:
``/v1/models`` lists each served name with its ``max_model_len`` (the context the server accepts) and
``root`` (the folder it was loaded from), and ``POST /tokenize`` counts a chat prompt's tokens with
the served model's own tokenizer and chat template. A prompt whose tokens plus ``max_out_len`` exceed
``max_model_len`` is reported here, naming the dataset file and line, instead of becoming a run of
HTTP 400s (vLLM refuses a prompt longer than its context, and cuts the answer of one that nearly fills it).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from accuracy.errors import ConfigError, InputError
from accuracy.io import loads_json
from accuracy.llm.opencompass.custom_prompts import PromptSample

RETRIED_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass
class Probe:
    """What one replica answered: its URL, the served model names (OpenAI API only), and what it
    reports of the suite's model (vLLM: ``max_model_len`` and the ``root`` folder it was loaded from)."""

    url: str
    models: list[str]
    model: str = ""
    max_model_len: int | None = None
    root: str | None = None


MAX_BODY = 16 << 20  # bytes: a /v1/models or /tokenize answer is a few KiB


def fetch(url: str, *, key: str = "EMPTY", timeout: float = 5.0, retries: int = 2,
          backoff: float = 0.5) -> Any:
    """GET ``url`` and parse its JSON body (None when the body is empty or not JSON).

    Raises ``OSError`` (with the reason, and the server's own error message) once every retry is spent.
    """
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    return _json_request(request, timeout=timeout, retries=retries, backoff=backoff)


def _json_request(request: urllib.request.Request, *, timeout: float, retries: int, backoff: float,
                  unsupported: tuple[int, ...] = ()) -> Any:
    """One HTTP exchange with retries: the parsed JSON answer (None when empty or not JSON, nested
    too deeply or with an absurd number). A malformed HTTP answer (garbage status line, a body cut
    short) counts as unreachable; a body over ``MAX_BODY`` or still arriving after ``4 * timeout``
    is refused. Status in ``unsupported`` raises ``TokenizeUnsupported``."""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = _read_body(response, deadline=time.monotonic() + 4 * timeout)
            return _parse(body)
        except urllib.error.HTTPError as exc:
            if exc.code in unsupported:
                raise TokenizeUnsupported(f"HTTP {exc.code}") from None
            if exc.code not in RETRIED_STATUS or attempt == retries:
                raise OSError(f"HTTP {exc.code} {exc.reason}{_error_message(exc)}") from None
        except ValueError as exc:  # a URL urllib cannot parse (http://[::1)
            raise OSError(f"not a usable URL ({exc})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {str(exc).strip()[:120]}"
            if isinstance(reason, ConnectionRefusedError) or attempt == retries:
                raise OSError(f"unreachable ({reason})") from None
    raise OSError("unreachable")  # pragma: no cover - the loop always returns or raises


def _read_body(response: Any, *, deadline: float) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise OSError(f"an answer over {MAX_BODY >> 20} MiB (not an OpenAI-compatible server's)")
        if time.monotonic() > deadline:
            raise OSError("an answer still arriving after the time allowed")


def _parse(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return loads_json(body.decode("utf-8", "replace"), path="answer")
    except InputError:
        return None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """``: <the server's message>`` from an error body (vLLM: ``{"object": "error", "message": ...}``;
    OpenAI: ``{"error": {"message": ...}}``; else its first 300 characters), or nothing."""
    try:
        body = exc.read(64 << 10)
    except (OSError, http.client.HTTPException):
        return ""
    data = _parse(body)
    message = data.get("message") if isinstance(data, dict) else None
    error = data.get("error") if isinstance(data, dict) else None
    if message is None and isinstance(error, dict):
        message = error.get("message")
    if message is None and isinstance(error, str):
        message = error
    text = str(message) if message is not None else body.decode("utf-8", "replace")
    text = " ".join(text.split())[:300]
    return f": {text}" if text else ""


def check_endpoint(api: str, base_urls: list[str], model: str, *, key: str = "EMPTY",
                   path=None, timeout: float = 5.0) -> list[Probe]:
    """Every replica answers, and (OpenAI API) lists ``model`` among its served models.

    An empty ``model`` means "the one model the server serves" (its name is read from ``/v1/models``;
    a server with several names them). Errors are ``ConfigError`` naming the suite file and
    ``llm.base_url`` / ``llm.model``.
    """
    probes = []
    for index, base in enumerate(base_urls):
        where = "llm.base_url" if len(base_urls) == 1 else f"llm.base_urls[{index}]"
        url = f"{base}/models" if api == "openai" else f"{base}/health"
        try:
            body = fetch(url, key=key, timeout=timeout)
        except OSError as exc:
            raise ConfigError(f"endpoint {url} is not serving: {exc}", path=path, where=where) from None
        if api != "openai":
            probes.append(Probe(url=base, models=[], model=model))
            continue
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ConfigError(f"{url} did not answer like an OpenAI-compatible server (no 'data' list)",
                              path=path, where=where)
        cards = {item["id"]: item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)}
        served = list(cards)
        name = model or (probes[0].model if probes else _the_only_model(base, served, path))
        if name not in cards:
            raise ConfigError(f"{base} does not serve model {name!r}; it serves: {', '.join(served) or '(none)'}",
                              path=path, where="llm.model")
        card = cards[name]
        limit = card.get("max_model_len")
        probes.append(Probe(url=base, models=served, model=name,
                            max_model_len=limit if type(limit) is int and limit > 0 else None,
                            root=card.get("root") if isinstance(card.get("root"), str) else None))
    return probes


def _the_only_model(base: str, served: list[str], path) -> str:
    if len(served) == 1:
        return served[0]
    raise ConfigError(f"{base} serves {len(served)} models ({', '.join(served) or 'none'}); name one with llm.model",
                      path=path, where="llm.model")


def context_limit(probes: list[Probe]) -> int | None:
    """The smallest ``max_model_len`` any replica reports (None when none reports one)."""
    limits = [probe.max_model_len for probe in probes if probe.max_model_len]
    return min(limits) if limits else None


def check_prompts_fit(base_url: str, model: str, samples: Iterable[PromptSample], *, max_out_len: int,
                      max_model_len: int, key: str = "EMPTY", timeout: float = 10.0,
                      workers: int = 4) -> int | None:
    """Count each sample's chat prompt with the server's ``/tokenize`` (vLLM) and refuse, before the run,
    any whose tokens plus ``max_out_len`` exceed ``max_model_len``.

    Returns the longest prompt's token count, or None when the server has no ``/tokenize`` (not a
    vLLM server: nothing is checked). Raises ``ConfigError`` naming the first sample that does not fit
    (its dataset file and line) and how many others do not.
    """
    samples = list(samples)
    if not samples:
        return 0
    url = base_url.rstrip("/").removesuffix("/v1") + "/tokenize"

    def count(sample: PromptSample) -> int | None:
        """The prompt's token count; None when the answer has no ``count`` (not vLLM's /tokenize)."""
        body = post_json(url, {"model": model, "messages": [{"role": "user", "content": sample.prompt}],
                               "add_generation_prompt": True}, key=key, timeout=timeout)
        if not isinstance(body, dict) or "count" not in body:
            return None
        value = body["count"]
        if type(value) is not int or value < 0:
            raise OSError(f"/tokenize answered a token count of {value!r} for the sample at "
                          f"{sample.path}:{sample.line} (not a count)")
        return value

    try:
        first = count(samples[0])
    except TokenizeUnsupported:
        return None
    if first is None:
        return None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = [first, *pool.map(count, samples[1:])]
    missing = [sample for sample, value in zip(samples, counts) if value is None]
    if missing:
        raise OSError(f"/tokenize answered without a token count for {len(missing)} sample(s), the first at "
                      f"{missing[0].path}:{missing[0].line} (it counted the others)")
    too_long = [(sample, value) for sample, value in zip(samples, counts) if value + max_out_len > max_model_len]
    if too_long:
        sample, value = too_long[0]
        others = f" ({len(too_long) - 1} more samples do not fit either)" if len(too_long) > 1 else ""
        raise ConfigError(
            f"sample of dataset {sample.dataset!r} does not fit the served model's context: "
            f"{value} prompt tokens + max_out_len {max_out_len} > max_model_len {max_model_len}{others}; "
            "shorten it, lower llm.generation.max_out_len, or serve with a larger --max-model-len",
            path=sample.path, where=f"line {sample.line}",
        )
    return max(counts)


class TokenizeUnsupported(OSError):
    """The server has no ``/tokenize`` endpoint (404/405): it is not a vLLM server."""


def post_json(url: str, payload: dict, *, key: str = "EMPTY", timeout: float = 10.0, retries: int = 2,
              backoff: float = 0.5) -> Any:
    """POST JSON and parse the answer; retried like ``fetch``. 404/405 raise ``TokenizeUnsupported``."""
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return _json_request(request, timeout=timeout, retries=retries, backoff=backoff, unsupported=(404, 405))
