"""OpenAI-compatible HTTP judge against a scripted server on 127.0.0.1 (http.server thread)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scoring.lm.errors import (
    JudgeParseError,
    JudgeRequestError,
    ModelUnavailableError,
    TransientJudgeError,
)
from scoring.lm.judge import build_judge, judge_pairs
from scoring.lm.judge_http import DictJudgeCache, OpenAIJudge
from scoring.lm.judge_prompts import get_template

Reply = tuple[int, dict[str, str], object]  # status, headers, JSON body (or raw str)


def completion(content: str, tokens: list[tuple[str, float, list[tuple[str, float]]]] | None):
    """A chat completion body; ``tokens`` = [(token, logprob, [(alt, logprob), ...]), ...]."""
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}}
    if tokens is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": t,
                    "logprob": lp,
                    "top_logprobs": [{"token": a, "logprob": alp} for a, alp in alts],
                }
                for t, lp, alts in tokens
            ]
        }
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


VERDICT_A = completion(
    "[[A]]",
    [
        ("[[", -0.01, [("[[", -0.01)]),
        ("A", -0.2, [("A", -0.2), ("B", -1.9), (" C", -3.0), ("The", -4.0), (" A", -5.0)]),
        ("]]", -0.001, [("]]", -0.001)]),
    ],
)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the timeout test hangs up on purpose; the broken pipe is expected


class ScriptedServer:
    """Serves scripted replies in order (the last one repeats) and records every request."""

    def __init__(self, replies: list[Reply] | Callable[[dict], Reply], delay: float = 0.0):
        self.replies = replies
        self.delay = delay
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    server.headers.append(dict(self.headers))
                    index = len(server.requests) - 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    if callable(server.replies):
                        status, headers, payload = server.replies(body)
                    else:
                        status, headers, payload = server.replies[
                            min(index, len(server.replies) - 1)
                        ]
                    if isinstance(payload, (int, float)) and not isinstance(payload, bool):
                        time.sleep(payload)  # a "slow" reply: sleep, then answer with A
                        payload = VERDICT_A
                    raw = payload if isinstance(payload, str) else json.dumps(payload)
                    data = raw.encode()
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(replies, delay: float = 0.0) -> ScriptedServer:
        srv = ScriptedServer(replies, delay)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


def make_judge(server: ScriptedServer, **kwargs) -> OpenAIJudge:
    options = {"backoff_base": 0.05, "jitter": 0.0, "max_retries": 3, "timeout": 5.0}
    options.update(kwargs)
    return OpenAIJudge("judge-model", base_url=server.url, api_key="sk-test", **options)


PROMPT = get_template("mtbench_pairwise").render("What is 2+2?", "4", "5")


def test_logprob_answer_reads_top_logprobs(serve):
    srv = serve([(200, {}, VERDICT_A)])
    (answer,) = make_judge(srv).judge([PROMPT])
    weights = {"A": math.exp(-0.2) + math.exp(-5.0), "B": math.exp(-1.9), "C": math.exp(-3.0)}
    total = sum(weights.values())
    assert answer.source == "logprobs"
    assert answer.probs == pytest.approx({k: v / total for k, v in weights.items()})
    assert answer.candidate_mass == pytest.approx(total)
    body, headers = srv.requests[0], srv.headers[0]
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 20
    assert body["max_tokens"] == 8
    assert body["temperature"] == 0.0
    assert body["model"] == "judge-model"
    assert body["messages"][0]["role"] == "system"
    assert headers["Authorization"] == "Bearer sk-test"


def test_429_then_success_respects_backoff(serve):
    srv = serve([(429, {}, {"error": "slow down"}), (200, {}, VERDICT_A)])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    (answer,) = make_judge(srv, backoff_base=0.05, sleep=sleep).judge([PROMPT])
    assert answer.probs["A"] > 0.5
    assert len(srv.requests) == 2
    assert sleeps == [pytest.approx(0.05)]
    assert srv.times[1] - srv.times[0] >= 0.05


def test_retry_after_header_sets_the_minimum_wait(serve):
    srv = serve([(503, {"Retry-After": "0.3"}, "busy"), (200, {}, VERDICT_A)])
    make_judge(srv, backoff_base=0.01).judge([PROMPT])
    assert len(srv.requests) == 2
    assert srv.times[1] - srv.times[0] >= 0.3


def test_gives_up_with_transient_error_after_max_retries(serve):
    srv = serve([(500, {}, "boom")])
    with pytest.raises(TransientJudgeError, match="after 3 attempts"):
        make_judge(srv, max_retries=2, backoff_base=0.001).judge([PROMPT])
    assert len(srv.requests) == 3
    long_wait = serve([(429, {"Retry-After": "120"}, "later")])
    with pytest.raises(TransientJudgeError) as info:
        make_judge(long_wait, backoff_max=5).judge([PROMPT])
    assert info.value.retry_after == pytest.approx(120)
    assert len(long_wait.requests) == 1  # no point hammering: the task queue retries later


def test_timeout_is_retried(serve):
    srv = serve([(200, {}, 1.0), (200, {}, VERDICT_A)])  # first reply takes 1 s
    (answer,) = make_judge(srv, timeout=0.2, backoff_base=0.01).judge([PROMPT])
    assert answer.probs["A"] > 0.5
    assert len(srv.requests) == 2


def test_malformed_answer_is_a_parse_error(serve):
    srv = serve([(200, {}, completion("I think the first one is better.", None))])
    judge = make_judge(srv)
    (answer,) = judge.judge([PROMPT])
    assert answer.probs is None
    assert "no verdict" in answer.error
    with pytest.raises(JudgeParseError):
        judge_pairs([("What is 2+2?", "5", "4")], judge, swap=False)
    recorded = judge_pairs([("What is 2+2?", "5", "4")], judge, on_error="record")
    assert recorded[0].verdict is None
    assert "no verdict" in recorded[0].error


def test_text_answer_without_logprobs_is_parsed_strictly(serve):
    srv = serve([(200, {}, completion("Assistant B is more accurate. [[B]]", None))])
    (answer,) = make_judge(srv).judge([PROMPT])
    assert answer.source == "text"
    assert answer.probs == {"A": 0.0, "B": 1.0, "C": 0.0}
    srv2 = serve([(200, {}, completion("[[C]]", None))])
    (answer2,) = make_judge(srv2, use_logprobs=False).judge([PROMPT])
    assert "logprobs" not in srv2.requests[0]
    assert answer2.probs["C"] == 1.0


def test_cache_hit_makes_no_second_request(serve):
    srv = serve([(200, {}, VERDICT_A)])
    cache = DictJudgeCache()
    first = make_judge(srv, cache=cache).judge([PROMPT])
    again = make_judge(srv, cache=cache).judge([PROMPT])  # a new judge object, same cache
    assert len(srv.requests) == 1
    assert again == first
    assert len(cache) == 1
    other = get_template("mtbench_pairwise").with_text(system="Be strict.")
    make_judge(srv, cache=cache, template=other).judge([other.render("What is 2+2?", "4", "5")])
    assert len(srv.requests) == 2  # a different template text is a different key


def test_permanent_errors_are_not_retried(serve):
    srv = serve([(404, {}, {"error": "model not found"})])
    with pytest.raises(ModelUnavailableError, match="404"):
        make_judge(srv).judge([PROMPT])
    bad = serve([(400, {}, {"error": "bad request"})])
    with pytest.raises(JudgeRequestError, match="400"):
        make_judge(bad).judge([PROMPT])
    assert len(srv.requests) == len(bad.requests) == 1


def test_concurrency_limit(serve):
    srv = serve(lambda body: (200, {}, VERDICT_A), delay=0.1)
    template = get_template("mtbench_pairwise")
    prompts = [template.render(f"Question {i}?", "a", "b") for i in range(8)]
    answers = make_judge(srv, max_concurrency=2).judge(prompts)
    assert len(answers) == 8
    assert srv.max_in_flight == 2


def _content_judge(position_biased: bool):
    """Prefers the answer containing GOOD, or (biased) always the first one."""

    def reply(body):
        user = body["messages"][-1]["content"]
        first = user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
        letter = "A" if position_biased or "GOOD" in first else "B"
        other = "B" if letter == "A" else "A"
        return (
            200,
            {},
            completion(
                f"[[{letter}]]",
                [("[[", 0.0, []), (letter, -0.1, [(letter, -0.1), (other, -2.5)]), ("]]", 0.0, [])],
            ),
        )

    return reply


def test_judge_pairs_with_settings_dict_end_to_end(serve):
    srv = serve(_content_judge(position_biased=False))
    settings = {
        "backend": "openai",
        "model": "judge-model",
        "base_url": srv.url,
        "template": "mtbench_pairwise",
        "max_concurrency": 2,
    }
    pairs = [("Q1?", "bad answer", "GOOD answer"), ("Q2?", "GOOD answer", "meh")]
    results = judge_pairs(pairs, build_judge(settings))
    p = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5))
    assert [r.verdict for r in results] == ["tuned", "base"]
    assert results[0].p_tuned == pytest.approx(p)
    assert results[1].p_tuned == pytest.approx(1 - p)
    assert not any(r.position_bias for r in results)
    assert results[0].judge_id == f"openai:{srv.url}:judge-model"
    assert len(srv.requests) == 4  # both orders of both pairs

    biased = serve(_content_judge(position_biased=True))
    res = judge_pairs(pairs[:1], {**settings, "base_url": biased.url})
    assert (res[0].verdict, res[0].position_bias) == ("tie", True)
    assert res[0].p_tuned == pytest.approx(0.5)
