"""Polling for upstream answers (capture/answerpoll.py), on gevent's own hub with real
sockets: the loop polls while an answer is awaited and stops when it has come or the window
has passed; an upstream that lately answers slowly is never polled for. (`capture record
--busy-poll-us` through a real proxy: tests/capture/test_record.py.)"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent

from capture.answerpoll import AnswerPoll
from capture.proxyio import Conn


def _turns_until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        gevent.sleep(0.001)


def test_the_loop_polls_while_an_answer_is_awaited_and_stops_when_it_comes() -> None:
    poll = AnswerPoll(window_ns=10_000_000_000)  # a window no test run reaches
    ours, theirs = socket.socketpair()
    conn = Conn(ours)
    try:

        def exchange() -> bytes:
            sent = poll.sent()
            try:
                return conn.recv_ready(100)
            finally:
                poll.answered(sent)

        reader = gevent.spawn(exchange)
        gevent.sleep(0)  # the reader has sent and waits for its answer
        assert poll.polling
        before = poll.turns
        _turns_until(lambda: poll.turns >= before + 50)  # the loop turns without an event
        theirs.send(b"answer")
        assert reader.get(timeout=30) == b"answer"
        _turns_until(lambda: not poll.polling)  # stopped by the next turn with none awaited
        stopped = poll.turns
        gevent.sleep(0.02)
        assert poll.turns == stopped  # and it stays stopped: the loop sleeps again
    finally:
        poll.close()
        conn.close()
        theirs.close()


def test_polling_ends_at_the_window_when_no_answer_comes() -> None:
    poll = AnswerPoll(window_ns=5_000_000)
    try:
        at, polled = poll.sent()
        assert polled and poll.polling
        _turns_until(lambda: not poll.polling)
        assert time.monotonic_ns() - at >= 5_000_000  # not before the window had passed
        poll.answered((at, polled))
    finally:
        poll.close()


def test_an_upstream_that_lately_answers_slowly_is_not_polled_for() -> None:
    now = [0]
    poll = AnswerPoll(window_ns=200_000, clock=lambda: now[0])
    try:

        def exchange(wait_ns: int) -> bool:
            sent = poll.sent()
            now[0] += wait_ns
            poll.answered(sent)
            return sent[1]

        assert exchange(50_000)  # nothing known yet: polled for
        for _ in range(40):
            exchange(5_000_000)  # answers take 5 ms
        _turns_until(lambda: not poll.polling)  # the first exchange's polling has ended
        assert not exchange(5_000_000)
        assert not poll.polling  # and this one started none
        # Fast answers again: each moves the average an eighth of the way, so after five it
        # is still above 5 ms x (7/8)^5 = 2.6 ms, and after forty below 5 ms x (7/8)^40 =
        # 24 µs plus the fast answers' own 50 µs: polled for again.
        fast = [exchange(50_000) for _ in range(40)]
        assert not any(fast[:5]) and fast[-1]
    finally:
        poll.close()


def test_a_window_of_zero_never_polls() -> None:
    poll = AnswerPoll(window_ns=0)
    sent = poll.sent()
    assert sent[1] is False and not poll.polling
    poll.answered(sent)
    poll.close()
