"""The HF generator: seeded batches, token budgets, stop strings, resumable skipping."""

from __future__ import annotations

import pytest

from selfimprove.generators import Request
from selfimprove.generators.hf import HFGenerator, truncate_at_stop
from selfimprove.models import Policy
from selfimprove.progress import Tracker
from selfimprove.prompts import render_chat


def _requests(n: int) -> list[Request]:
    return [Request(f"r{i}", [{"role": "user", "content": "x" * (i % 5 + 1)}]) for i in range(n)]


def _run(gen: HFGenerator, model: str, requests: list[Request], seed: int, done: set[str] = frozenset()) -> dict:
    out = {}
    for batch in gen.generate(Policy(model), requests, seed=seed, done=set(done), tracker=Tracker(None, None)):
        out.update({o.id: (o.text, o.num_tokens) for o in batch})
    return out


def test_batches_respect_row_and_token_budgets() -> None:
    gen = HFGenerator(batch_size=3, max_new_tokens=10, max_batch_tokens=60)
    lengths = [5, 30, 7, 6, 5, 40, 8]
    batches = gen.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * (max(lengths[i] for i in b) + 10) <= 60
    # sorted by prompt length, so similar lengths share a batch
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_sampling_is_deterministic_under_a_seed(tiny_model: str) -> None:
    gen = HFGenerator(temperature=1.0, max_new_tokens=6, batch_size=4)
    requests = _requests(6)
    first = _run(gen, tiny_model, requests, seed=1)
    assert _run(gen, tiny_model, requests, seed=1) == first
    assert _run(gen, tiny_model, requests, seed=2) != first
    assert set(first) == {r.id for r in requests}
    assert all(0 < n <= 6 for _, n in first.values())


def test_skipping_done_batches_reproduces_the_rest(tiny_model: str) -> None:
    gen = HFGenerator(temperature=1.0, max_new_tokens=6, batch_size=2)
    requests = _requests(6)
    full = _run(gen, tiny_model, requests, seed=3)
    first_batch = {requests[i].id for i in gen.batches([len(r.messages[0]["content"]) + 12 for r in requests])[0]}
    resumed = _run(gen, tiny_model, requests, seed=3, done=first_batch)
    assert set(resumed) == set(full) - first_batch
    assert all(resumed[k] == full[k] for k in resumed)


def test_greedy_ignores_the_seed(tiny_model: str) -> None:
    gen = HFGenerator(temperature=0.0, max_new_tokens=5, batch_size=4)
    requests = _requests(4)
    assert _run(gen, tiny_model, requests, seed=1) == _run(gen, tiny_model, requests, seed=99)


def test_chat_template_and_stop_strings(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = render_chat(tokenizer, [{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>assistant\n") and "hi" in text
    assert truncate_at_stop("a b\n\nQ: next", ["\n\nQ:", "###"]) == "a b"
    assert truncate_at_stop("no stop here", ["###"]) == "no stop here"


def test_common_prefix_leaves_a_token_to_generate_from() -> None:
    from selfimprove.generators.hf import common_prefix

    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix([[7, 1], [8, 1]]) == 0


def test_shared_prefix_gives_the_same_outputs(tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.utils import generic

    from selfimprove.generators import cascade, hf

    deprecations: list[str] = []  # transformers 5.24 renamed past_key_values to cache: nothing uses the old name
    monkeypatch.setattr(generic.logger, "warning_once", lambda message, *a, **kw: deprecations.append(message))
    steps, decode_step = [], cascade._decode_step  # on CPU the shared prefix is read once (cascade attention)
    monkeypatch.setattr(cascade, "_decode_step", lambda *args: steps.append(1) or decode_step(*args))

    system = {"role": "system", "content": "A long shared instruction that every prompt in the batch starts with."}
    requests = [Request(f"r{i}", [system, {"role": "user", "content": "q" * (i + 1)}]) for i in range(5)]
    for temperature in (0.0, 1.0):
        shared = HFGenerator(temperature=temperature, max_new_tokens=6, batch_size=8)
        copied = HFGenerator(temperature=temperature, max_new_tokens=6, batch_size=8, cascade=False)
        plain = HFGenerator(temperature=temperature, max_new_tokens=6, batch_size=8, share_prefix=False)
        rows = [list(range(40)) + [i] for i in range(3)]
        assert hf.common_prefix(rows) >= hf.MIN_SHARED_PREFIX
        expected = _run(plain, tiny_model, requests, seed=4)
        assert _run(copied, tiny_model, requests, seed=4) == expected and not steps  # the prefix copied to each row
        assert _run(shared, tiny_model, requests, seed=4) == expected and steps  # read once: cascade attention
        steps.clear()
    assert deprecations == []
