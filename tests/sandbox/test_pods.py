"""--pods N: N API processes on one port, one set of metrics across them, one queue."""

from __future__ import annotations

import re
from typing import Any


def test_two_pods_share_the_port_metrics_and_store(launch: Any, connect: Any, load: Any) -> None:
    sb = launch(pods=2)
    api = connect(sb)
    result = load(sb, connections=8, seconds=1.5)
    assert result.done and not result.errors
    posted = sum(1 for _, status, _ in result.done if status == 200)
    # with several connections, the kernel spreads them over both pods
    seen = {api.get("/health", key=None).headers["x-sandbox-pod"] for _ in range(40)}
    assert seen == {"0", "1"}
    api.flush()
    stored = api.get("/api/public/traces?limit=1").json["meta"]["totalItems"]
    assert stored == posted
    # /metrics on either pod reports the sum over both
    text = api.get("/metrics", key=None).body.decode()
    match = re.search(
        r'^http_requests_total\{method="POST",route="/api/public/traces",status="200"\} (\S+)',
        text,
        re.M,
    )
    assert match is not None and float(match.group(1)) == posted
