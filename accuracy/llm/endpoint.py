"""Preflight for a served model: is the endpoint up, and does it serve the model the suite names?

Checked before OpenCompass starts, so a typo in a URL costs seconds, not a run. Requests here are
retried on 5xx, 429 and timeouts with exponential backoff; a refused connection is not retried
(nothing is listening). During the run, retries belong to OpenCompass's model classes
(``oc_models``: the ``openai`` client retries 408/429/5xx/timeouts with backoff ``retry`` times).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from accuracy.errors import ConfigError

RETRIED_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass
class Probe:
    """What one replica answered: its URL, and the served model names (OpenAI API only)."""

    url: str
    models: list[str]


def fetch(url: str, *, key: str = "EMPTY", timeout: float = 5.0, retries: int = 2,
          backoff: float = 0.5) -> Any:
    """GET ``url`` and parse its JSON body (None when the body is empty or not JSON).

    Raises ``OSError`` (with the reason) once every retry is spent.
    """
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
            try:
                return json.loads(body) if body.strip() else None
            except ValueError:
                return None
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRIED_STATUS or attempt == retries:
                raise OSError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError) or attempt == retries:
                raise OSError(f"unreachable ({reason})") from None
    raise OSError("unreachable")  # pragma: no cover - the loop always returns or raises


def check_endpoint(api: str, base_urls: list[str], model: str, *, key: str = "EMPTY",
                   path=None, timeout: float = 5.0) -> list[Probe]:
    """Every replica answers, and (OpenAI API) lists ``model`` among its served models.

    Errors are ``ConfigError`` naming the suite file and ``llm.base_url`` / ``llm.model``.
    """
    probes = []
    for index, base in enumerate(base_urls):
        where = "llm.base_url" if len(base_urls) == 1 else f"llm.base_urls[{index}]"
        url = f"{base}/models" if api == "openai" else f"{base}/health"
        try:
            body = fetch(url, key=key, timeout=timeout)
        except OSError as exc:
            raise ConfigError(f"endpoint {url} is not serving: {exc}", path=path, where=where) from None
        served: list[str] = []
        if api == "openai":
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise ConfigError(f"{url} did not answer like an OpenAI-compatible server (no 'data' list)",
                                  path=path, where=where)
            served = [str(item.get("id")) for item in data if isinstance(item, dict)]
            if model not in served:
                raise ConfigError(
                    f"{base} does not serve model {model!r}; it serves: {', '.join(served) or '(none)'}",
                    path=path, where="llm.model",
                )
        probes.append(Probe(url=base, models=served))
    return probes
