#!/usr/bin/env python3
"""Concurrent requests against `specoffload serve` on 127.0.0.1:PORT, for the sanitizer runs
(scripts/tsan.sh): plain and streaming completions from eight threads, each checked for a 200
and a finish reason."""
import json
import sys
import threading
import urllib.request

port = int(sys.argv[1])
errors = []


def ask(i: int) -> None:
    body = {"prompt": f"Count to {i}:", "max_tokens": 8, "stream": i % 2 == 1}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            text = response.read().decode()
            if response.status != 200 or "finish_reason" not in text:
                errors.append(f"request {i}: {response.status} {text[:200]}")
    except Exception as error:  # noqa: BLE001 - reported below
        errors.append(f"request {i}: {error!r}")


threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
if errors:
    sys.exit("\n".join(errors))
print("serve: 8 concurrent requests answered", file=sys.stderr)
