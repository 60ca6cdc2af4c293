"""Checks a running gsch container from outside, as an operator's probe and client would:
/readyz answers ready, then one request submitted through POST /v1/requests is placed and
bound on a simulated cluster, read back through GET /v1/requests/{id}.

Standard library only: it runs on the host, next to the container, before any venv exists.
Usage: python3 .ci/image_check.py API_URL TOKEN_FILE [TIMEOUT_SECONDS]
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

REQUEST_ID = "ci-image-1"
REQUEST = {
    "request_id": REQUEST_ID,
    "policy": "GMostRequestedPriority",
    "select_clusters": [["edge-daejeon", "edge-seoul"], "cloud-kr"],
    "project_name": "ci",
    "workspace_name": "image",
    "workload": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx",
                    "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
                }
            ]
        },
    },
}


def call(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def until(what: str, deadline: float, probe: Any) -> Any:
    """Calls `probe` every half second until it returns something true; fails at the deadline
    with the last thing seen, so a CI log says what the container answered."""
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found, last = probe()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            found, last = False, repr(error)
        if found:
            return last
        time.sleep(0.5)
    sys.exit(f"image check: {what} did not happen in time; last answer: {last}")


def main(api: str, token_file: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    token = open(token_file).read().strip()  # noqa: SIM115 - one short read

    def ready() -> tuple[bool, Any]:
        status, body = call(f"{api}/readyz")
        return status == 200 and body["ready"], body

    print("image check: /readyz", json.dumps(until("/readyz 200", deadline, ready)))
    status, answer = call(f"{api}/v1/requests", token, REQUEST)
    if status != 202:
        sys.exit(f"image check: POST /v1/requests answered {status}: {answer}")
    print("image check: submitted", json.dumps(answer))

    def bound() -> tuple[bool, Any]:
        status, body = call(f"{api}/v1/requests/{REQUEST_ID}")
        if status == 200 and body["state"] in ("failed", "rejected", "cancelled"):
            sys.exit(f"image check: the request ended {body['state']}: {body}")
        return status == 200 and body["state"] == "bound", body

    placed = until("the request bound", deadline, bound)
    nodes = [f"{p['cluster']}/{p['node']}" for p in placed["placements"]]
    print(f"image check: {REQUEST_ID} bound on {', '.join(nodes)}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else 120.0)
