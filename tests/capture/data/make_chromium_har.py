"""Writes chromium.har: a HAR recorded by a real browser (Chromium, driven by Playwright)
while its page talks to the embedded sandbox. Not run by the suite; the HAR it wrote is
committed beside it. To write it again (needs `pip install playwright` and a Chromium):

    python tests/capture/data/make_chromium_har.py /usr/bin/chromium

The page posts three traces with observations, one ingestion batch, lists and reads traces,
and fetches a path that is not AgentTrace's; the API key is a throwaway of this script's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from sandbox.process import start_sandbox

KEY = "sk-har-fixture-0001"
HERE = Path(__file__).parent

PAGE_SCRIPT = """
async ([key]) => {
  const auth = {"Authorization": "Bearer " + key, "Content-Type": "application/json"};
  const t0 = Date.parse("2026-11-29T08:00:00.000Z");
  const iso = (ms) => new Date(t0 + ms).toISOString();
  for (let i = 0; i < 3; i++) {
    const id = "trace-chromium-" + i + "-a1b2c3d4e5f6";
    const trace = {
      id, name: "agent-run", timestamp: iso(i * 1000), userId: "user-" + i,
      input: {question: "how many pods for " + (i + 1) * 1000 + " traces/s?"},
      observations: [
        {id: "obs-chromium-" + i + "-gen-a1b2c3d4e5f6", type: "GENERATION", name: "llm",
         startTime: iso(i * 1000 + 5), endTime: iso(i * 1000 + 900), model: "gpt-4o",
         usage: {input: 120 + i, output: 80 + i}},
        {id: "obs-chromium-" + i + "-span-a1b2c3d4e5f6", type: "SPAN", name: "tool",
         startTime: iso(i * 1000 + 10), endTime: iso(i * 1000 + 40)},
      ],
    };
    await fetch("/api/public/traces", {method: "POST", headers: auth, body: JSON.stringify(trace)});
  }
  const batch = {batch: [
    {id: "evt-chromium-0-a1b2c3d4e5f6", type: "trace-create", timestamp: iso(5000),
     body: {id: "trace-chromium-batch-a1b2c3d4e5f6", name: "batched", timestamp: iso(5000)}},
    {id: "evt-chromium-1-a1b2c3d4e5f6", type: "span-create", timestamp: iso(5001),
     body: {id: "obs-chromium-batch-a1b2c3d4e5f6", traceId: "trace-chromium-batch-a1b2c3d4e5f6",
            name: "step", startTime: iso(5001)}},
  ]};
  const body = JSON.stringify(batch);
  await fetch("/api/public/ingestion", {method: "POST", headers: auth, body});
  await fetch("/api/public/traces?limit=10&page=1", {headers: auth});
  await fetch("/api/public/traces/trace-chromium-0-a1b2c3d4e5f6", {headers: auth});
  await fetch("/not-agenttrace/status", {headers: auth});
}
"""


def main(chromium: str) -> None:
    out = HERE / "chromium.har"
    with start_sandbox(api_keys={KEY: "proj-har"}) as sb, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        context = browser.new_context(record_har_path=str(out))
        page = context.new_page()
        page.goto(sb.url + "/health")
        page.evaluate(PAGE_SCRIPT, [KEY])
        context.close()  # writes the HAR
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/chromium")
