"""The LLM judge: rubric prompts, score parsing, the generator it is given (a stub) or that a recipe names (the tiny
model, an HTTP endpoint)."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfimprove.errors import UserError
from selfimprove.generators import Output, Request
from selfimprove.generators.openai_compat import OpenAIGenerator
from selfimprove.models import Policy
from selfimprove.progress import Tracker
from selfimprove.records import Rollout
from selfimprove.registry import registries
from selfimprove.verifiers.judge import JudgeVerifier, judge
from selfimprove.verifiers.rubrics import RUBRICS, parse_score


class Scripted:
    """A generator that answers each request with the next of ``replies`` and remembers what it was asked."""

    def __init__(self, temperature: float = 1.0, max_new_tokens: int = 16):
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.replies: list[str] = []
        self.seen: list[tuple[Policy, Request]] = []

    def generate(self, policy, requests, *, seed, done, tracker):
        self.seen.extend((policy, r) for r in requests)
        yield [Output(r.id, text, 1) for r, text in zip(requests, self.replies, strict=False)]


@pytest.fixture
def scripted():
    return Scripted()


def rollout(completion: str, question: str = "What is 2+2?", answer: str | None = "4") -> Rollout:
    return Rollout("r", "solver", "p", [{"role": "user", "content": question}], completion, answer)


@pytest.mark.parametrize(
    "text, max_score, score",
    [
        ("<Calculation>1+1+1+1+1</Calculation>\n<Score>5</Score>", 7, 5.0),
        ("<score> 7 </score>", 7, 7.0),
        ("<Score>2</Score> on reflection <Score>3</Score>", 7, 3.0),  # the last one counts
        ("<Score>9</Score>", 7, None),  # out of range: the judge ignored the rubric
        ("<Score>-1</Score>", 7, None),
        ("Score: 5", 7, None),
        ("", 7, None),
        ("<Score>1</Score>", 1, 1.0),
    ],
)
def test_parse_score(text, max_score, score):
    assert parse_score(text, max_score) == score


def test_verdicts_and_unparseable_output(scripted):
    scripted.replies = ["<Score>7</Score>", "<Score>4</Score>", "I refuse to grade this."]
    verifier = JudgeVerifier("/frozen/base", scripted, threshold=5)
    verdicts = verifier.verify([rollout("4"), rollout("four-ish"), rollout("?")])
    assert [(v.score, v.passed) for v in verdicts[:2]] == [(7.0, True), (4.0, False)]
    assert math.isnan(verdicts[2].score) and not verdicts[2].passed  # not a score, so never a silent reward of 0
    assert verdicts[0].info["score"] == 7.0 and verdicts[0].info["max_score"] == 7.0
    assert verdicts[2].info["score"] is None and verdicts[2].info["error"] == "unparseable judge output"
    assert verdicts[2].info["judgement"] == "I refuse to grade this."


def test_prompt_is_the_rubric_with_the_pair_filled_in(scripted):
    scripted.replies = ["<Score>1</Score>"]
    verifier = JudgeVerifier("/frozen/base", scripted, checkpoint="/ckpt", rubric="reference")
    (verdict,) = verifier.verify([rollout("The answer is {4}.", question="What is 2+2?", answer="4")])
    assert verdict.passed  # reference rubric: max 1, default threshold a perfect score
    policy, request = scripted.seen[0]
    assert policy == Policy("/frozen/base", "/ckpt")
    (message,) = request.messages
    assert message["role"] == "user"
    assert "<Question>\nWhat is 2+2?\n</Question>" in message["content"]
    assert "<Reference>\n4\n</Reference>" in message["content"]
    assert "The answer is {4}." in message["content"]  # braces in a completion are kept verbatim


def test_additive_rubric_lists_seven_criteria():
    rubric = RUBRICS["additive7"]
    assert rubric.max_score == 7
    assert [f"{i}." in rubric.template for i in range(1, 8)] == [True] * 7
    assert "{question}" in rubric.template and "{completion}" in rubric.template


def test_custom_template(scripted):
    scripted.replies = ["<Score>3</Score>"]
    verifier = JudgeVerifier("m", scripted, template="Rate {completion} from 0 to 4", max_score=4, threshold=3)
    assert verifier.verify([rollout("x")])[0].passed
    assert scripted.seen[0][1].messages[0]["content"] == "Rate x from 0 to 4"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"rubric": "nope"}, "unknown rubric 'nope'"),
        ({"template": "{question} {solution}"}, "template fields ['solution'] unknown"),
        ({"threshold": 8}, "threshold 8.0 is outside 0..7.0"),
        ({"generation": {"temprature": 0.5}}, "generator 'hf' has no argument 'temprature'"),
        ({"generator": "nope"}, "Unknown generator 'nope'"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        judge(model="m", **args)


def test_a_recipes_judge_is_given_the_generator_it_names_with_its_settings():
    registries["generator"].register("scripted", Scripted)
    verifier = judge(model="m", generator="scripted", generation={"max_new_tokens": 4})
    assert isinstance(verifier.generator, Scripted)
    assert (verifier.generator.temperature, verifier.generator.max_new_tokens) == (0.0, 4)  # greedy by default


def test_tiny_model_judge_does_not_crash(tiny_model):
    """A random tiny model writes nonsense: every verdict is a clean 'unparseable', none a crash."""
    verifier = judge(model=tiny_model, generation={"max_new_tokens": 8, "batch_size": 2})
    verdicts = verifier.verify([rollout("4"), rollout("5"), rollout("6")])
    assert len(verdicts) == 3
    for v in verdicts:
        assert math.isnan(v.score) and not v.passed and v.info["score"] is None


# -- the OpenAI-compatible generator against a local stub server ------------------------------------------


class Endpoint(BaseHTTPRequestHandler):
    bodies: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Endpoint.bodies.append({**body, "auth": self.headers.get("Authorization")})
        if Endpoint.status != 200:
            self.send_response(Endpoint.status)
            self.end_headers()
            self.wfile.write(b'{"error": "bad model"}')
            return
        reply = {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": f"<Score>{len(body['messages'][0]['content']) % 8}</Score>",
                    }
                }
            ],
            "usage": {"completion_tokens": 5},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    Endpoint.bodies, Endpoint.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_generator(endpoint, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sekrit")
    gen = OpenAIGenerator(base_url=endpoint, api_key_env="TEST_KEY", temperature=0.0, max_new_tokens=32, concurrency=2)
    requests = [Request(f"q{i}", [{"role": "user", "content": "x" * i}]) for i in range(5)]
    batches = list(
        gen.generate(Policy("served-model"), requests, seed=1, done={"q0", "q1"}, tracker=Tracker(None, None))
    )
    outputs = [o for batch in batches for o in batch]
    assert [o.id for o in outputs] == ["q2", "q3", "q4"]  # the first batch was done already
    assert [o.text for o in outputs] == ["<Score>2</Score>", "<Score>3</Score>", "<Score>4</Score>"]
    assert all(o.num_tokens == 5 for o in outputs)
    body = Endpoint.bodies[0]
    assert body["model"] == "served-model" and body["temperature"] == 0.0 and body["max_tokens"] == 32
    assert body["auth"] == "Bearer sekrit" and isinstance(body["seed"], int)


def test_judge_through_an_endpoint(endpoint):
    verifier = judge(model="served-model", generator="openai", generation={"base_url": endpoint}, threshold=3)
    verdicts = verifier.verify([rollout("a"), rollout("b")])
    assert len(verdicts) == 2 and all(v.info["score"] is not None for v in verdicts)
    assert len(Endpoint.bodies) == 2


def test_openai_errors(endpoint):
    Endpoint.status = 400
    gen = OpenAIGenerator(base_url=endpoint, retries=0)
    with pytest.raises(UserError, match="answered 400"):
        list(gen.generate(Policy("m"), [Request("a", [])], seed=0, done=set(), tracker=Tracker(None, None)))
    closed = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", retries=0, timeout=5)
    with pytest.raises(UserError, match="failed after 1 attempts"):
        list(closed.generate(Policy("m"), [Request("a", [])], seed=0, done=set(), tracker=Tracker(None, None)))
    with pytest.raises(UserError, match="base_url must start with http"):
        OpenAIGenerator(base_url="localhost:8000")


class ByLength:
    """A deterministic judge: the score is the completion's length modulo 8, read back from the prompt."""

    def __init__(self, temperature: float = 1.0, max_new_tokens: int = 16):
        pass

    def generate(self, policy, requests, *, seed, done, tracker):
        for r in requests:
            response = r.messages[0]["content"].split("<Response>\n")[1].split("\n</Response>")[0]
            yield [Output(r.id, f"<Score>{len(response) % 8}</Score>" if response != "?" else "no idea", 1)]


def test_judge_meets_the_plugin_contract():
    from selfimprove.testing import check_verifier

    registries["generator"].register("by-length", ByLength)
    records = [
        {"prompt": "Say hi", "completion": "hi there", "expect": True},  # 8 % 8 = 0 >= threshold 0
        {"prompt": [{"role": "user", "content": "Q"}], "completion": "?", "expect": False},  # unparseable
    ]
    args = {"model": "m", "generator": "by-length", "threshold": 0.0}
    verdicts = check_verifier(judge, records, args, score_range=(0.0, 7.0), garbage_fails=False)
    assert verdicts[1].info["error"] == "unparseable judge output"


def test_policy_judges_its_own_rollouts(scripted):
    """``model: policy`` is LSP-style self-reward: the loop hands the judge the policy that generated the rollouts."""
    scripted.replies = ["<Score>6</Score>"]
    verifier = JudgeVerifier("policy", scripted, threshold=5)
    with pytest.raises(UserError, match="needs the loop's policy"):
        verifier.verify([rollout("4")])
    current = Policy("/base", "/run/iter-001/checkpoint")
    verifier.use_policy(current)
    (verdict,) = verifier.verify([rollout("4")])
    assert verdict.passed and scripted.seen[-1][0] is current
