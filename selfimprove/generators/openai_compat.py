"""Generation through an OpenAI-compatible chat completions endpoint (vLLM serve, llama.cpp server, OpenAI).

Written on the standard library's urllib so that using an endpoint adds no dependency.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfimprove.errors import UserError
from selfimprove.generators import Output, Request
from selfimprove.generators.hf import batch_seed
from selfimprove.models import Policy
from selfimprove.progress import Tracker


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible HTTP endpoint; the policy's base names the served model."""

    def __init__(
        self,
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        stop: list[str] | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 2,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"openai: base_url must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or max_new_tokens < 1:
            raise UserError("openai: concurrency and max_new_tokens must be at least 1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        if stop:
            self.sampling["stop"] = stop
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code < 500 and exc.code != 429:  # our request is wrong: retrying will not help
                    raise UserError(f"openai: {self.url} answered {exc.code}: {detail}") from None
                error = f"{exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                error = str(getattr(exc, "reason", exc))
            if attempt < self.retries:
                time.sleep(2**attempt)
        raise UserError(f"openai: {self.url} failed after {self.retries + 1} attempts: {error}")

    def _complete(self, model: str, request: Request, seed: int) -> Output:
        body = {"model": model, "messages": request.messages, "seed": seed, **self.sampling}
        data = self._post(body)
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise UserError(f"openai: {self.url} returned no choices: {str(data)[:300]}") from None
        tokens = (data.get("usage") or {}).get("completion_tokens") or 0
        return Output(request.id, text, int(tokens))

    def generate(
        self,
        policy: Policy,
        requests: list[Request],
        *,
        seed: int,
        done: set[str],
        tracker: Tracker,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[list[Output]]:
        if not isinstance(policy, Policy) or policy.checkpoint:
            raise UserError("openai: an endpoint serves a fixed model; it cannot sample from trained weights")
        rank, world = shard
        with ThreadPoolExecutor(self.concurrency) as pool:
            for number, start in enumerate(range(0, len(requests), self.concurrency)):
                batch = requests[start : start + self.concurrency]
                if number % world != rank or all(r.id in done for r in batch):
                    if number % world == rank:
                        tracker.advance(len(batch))
                    yield []
                    continue
                outputs = list(pool.map(lambda r: self._complete(policy.base, r, batch_seed(seed, r.id)), batch))
                tracker.advance(len(batch), sum(o.num_tokens for o in outputs))
                yield outputs
