"""The recorder's two halves, the proxy's tap (capture/recording.py) and the writer process
(capture/record_writer.py), driven directly: the queue bound across the pipe, a writer that
dies, a proxy that goes away without finishing. The real writer process runs each time.
And the proxy's upstream timeout, with a timer per connection started for each exchange."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import gevent
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.corpus import CorpusReader, IdSpans
from capture.recording import Recorder, RecordOptions

BODY = b'{"id":"trace-0001-000000000001","name":"t"}'
PATH = "/api/public/traces"


def _options(tmp_path: Path, **kw: object) -> RecordOptions:
    return RecordOptions(output=tmp_path / "rec.atc", upstream="http://127.0.0.1:9", **kw)  # type: ignore[arg-type]


def test_a_full_queue_drops_from_the_recording_and_counts_it(tmp_path: Path) -> None:
    # Unanswered requests wait in the writer for their answer (window_s), so the first two
    # fill a queue of two; the next three find it full whatever the writer's speed.
    recorder = Recorder(_options(tmp_path, queue_records=2, window_s=60.0))
    recorder.start()
    tokens = [
        recorder.request("POST", PATH, [("Content-Type", "application/json")], BODY)
        for _ in range(5)
    ]
    assert tokens[:2] == [0, 1]
    assert tokens[2:] == [None, None, None]
    for token in tokens[:2]:
        assert token is not None
        recorder.answered(token, 201, 1000)
    gevent.sleep(0)  # the frames go into the pipe on the next turn of the loop
    path = recorder.stop()
    counts = recorder.counts
    assert (counts.requests, counts.recorded, counts.dropped_queue_full) == (5, 2, 3)
    with CorpusReader(path) as reader:
        records = list(reader)
        assert reader.header.meta.extra["recording"]["dropped_queue_full"] == 3
    assert [(r.body, r.status) for r in records] == [(BODY, 201), (BODY, 201)]
    assert records[0].headers == (("Content-Type", "application/json"),)


def test_the_queue_frees_as_the_writer_reports_progress(tmp_path: Path) -> None:
    recorder = Recorder(_options(tmp_path, queue_records=1))
    recorder.start()
    for i in range(3):  # one at a time: each is answered, written and acknowledged first
        token = recorder.request("POST", PATH, [], BODY)
        assert token == i
        recorder.answered(token, 200, 1)
        with gevent.Timeout(30):
            while recorder._written <= i:
                gevent.sleep(0.005)
    recorder.stop()
    assert (recorder.counts.recorded, recorder.counts.dropped_queue_full) == (3, 0)


def test_a_writer_that_dies_stops_the_recording_not_the_tap(tmp_path: Path) -> None:
    recorder = Recorder(_options(tmp_path))
    recorder.start()
    for i in range(2):  # written and acknowledged before the writer dies
        token = recorder.request("POST", PATH, [], BODY)
        assert token == i
        recorder.answered(token, 200, 1)
    with gevent.Timeout(30):
        while recorder._written < 2:
            gevent.sleep(0.005)
    os.kill(recorder.writer_pid, signal.SIGKILL)
    with gevent.Timeout(30):
        while recorder.error is None:  # the events pipe closes: the reader greenlet says so
            gevent.sleep(0.01)
    assert recorder.request("POST", PATH, [], BODY) is None  # counted, not queued
    counts = recorder.counts
    assert (counts.recording_stopped, counts.dropped_queue_full) == (1, 0)  # not the queue's
    recorder.stop()
    assert "writer process exited" in (recorder.error or "")
    assert (counts.requests, counts.recorded) == (3, 2)  # the two it acknowledged


def test_a_tap_gone_without_end_leaves_a_recoverable_partial(tmp_path: Path) -> None:
    recorder = Recorder(_options(tmp_path))
    recorder.start()
    for _ in range(4):
        token = recorder.request("POST", PATH, [], BODY)
        assert token is not None
        recorder.answered(token, 200, 1)
    gevent.sleep(0)
    recorder.abort()  # the pipe closes without END, as when the proxy is killed
    assert not (tmp_path / "rec.atc").exists()
    with CorpusReader(recorder.partial_path, recover=True) as reader:
        assert not reader.header.complete
        assert [r.body for r in reader] == [BODY] * 4


def test_a_corpus_the_writer_cannot_open_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "rec.atc.partial").mkdir()  # where the writer must create its file
    try:
        Recorder(_options(tmp_path))
    except OSError as exc:
        message = str(exc)
    else:
        raise AssertionError("the writer opened a directory as its corpus")
    assert message.startswith(f"{tmp_path / 'rec.atc.partial'}: ")
    assert "\n" not in message


PROXY_WITH_TIMEOUT = """
import sys
import gevent
from capture.proxy import ReverseProxy
from capture.proxyhttp import Upstream

client_timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
proxy = ReverseProxy(
    "127.0.0.1", 0, Upstream.parse(sys.argv[1]), timeout=float(sys.argv[2]),
    client_timeout=client_timeout,
)
host, port = proxy.bind()
proxy.start()
print(port, flush=True)
gevent.wait()
"""


def test_an_upstream_that_stops_answering_gives_504_on_a_kept_alive_connection(
    tmp_path: Path,
) -> None:
    # The upstream answers the first request of its connection and never the second: the
    # proxy's per-connection timer must be started again for each exchange.
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def upstream() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.recv(65536)  # the second request: read, never answered
            done.wait(30)

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", PROXY_WITH_TIMEOUT, url, "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once it listens
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        client.request("POST", PATH, body=BODY)
        first = client.getresponse()
        assert (first.status, first.read()) == (200, b"ok")
        client.request("POST", PATH, body=BODY)  # the same connection, kept alive
        second = client.getresponse()
        assert second.status == 504
        assert b"upstream timed out" in second.read()
        client.close()
    finally:
        done.set()
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        listener.close()
        thread.join(timeout=30)


def test_a_silent_client_is_closed_and_a_stalled_request_gets_408(tmp_path: Path) -> None:
    # client_timeout 0.5 s: a connection that never sends a request is closed without an
    # answer; one that stops inside a request's head gets 408, then the close. Neither
    # reaches the upstream (a listener that accepts nothing).
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", PROXY_WITH_TIMEOUT, url, "30", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once it listens
        with socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
            assert silent.recv(4096) == b""  # closed by the proxy, nothing said
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            stalled.sendall(b"POST /api/public/traces HTTP/1.1\r\nHost: x\r\n")
            answer = b""
            while chunk := stalled.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"request not received in time" in answer
        listener.settimeout(0)
        try:
            listener.accept()
            raise AssertionError("the proxy connected to the upstream")
        except BlockingIOError:
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        listener.close()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1), st.integers(0, 5)),
        max_size=40,
    )
)
def test_spans_are_packed_seven_bytes_each_as_the_corpus_format_says(
    spans: list[tuple[int, int, int]],
) -> None:
    packed = IdSpans.of(spans)
    expected = b"".join(
        start.to_bytes(4, "little") + length.to_bytes(2, "little") + bytes([kind])
        for start, length, kind in spans
    )
    assert packed.packed == expected
    assert list(packed) == spans
