"""GEdge's inputs as its repositories publish them (written here from their shapes, not
copied), a fleet with GEdge's test-bed names, and a real HTTP receiver for callbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# GEdge's test bed (3rd/5th decks): clusters c1..c4, workers c1wnode1.., plus a cluster the
# dashboard calls "mec(ilsan)" (gsch name mec-ilsan, mapped in [gedge] cluster_aliases).
TOPOLOGY = """
intra_cluster_ms = 0.4

[[clusters]]
name = "c1"
tier = "edge"
  [[clusters.nodes]]
  name = "c1wnode1"
  cpu = "8"
  memory = "32Gi"
  running_pods = ["p1-3f6e2a1c-uid1/camera-1"]
  [[clusters.nodes]]
  name = "c1wnode2"
  cpu = "8"
  memory = "32Gi"

[[clusters]]
name = "c2"
tier = "cloud"
  [[clusters.nodes]]
  name = "c2wnode"
  count = 2
  cpu = "32"
  memory = "128Gi"

[[clusters]]
name = "c3"
tier = "near-edge"
  [[clusters.nodes]]
  name = "c3wnode"
  count = 2
  cpu = "4"
  memory = "16Gi"

[[clusters]]
name = "c4"
tier = "edge"
  [[clusters.nodes]]
  name = "c4wnode1"
  cpu = "4"
  memory = "16Gi"

[[clusters]]
name = "mec-ilsan"
tier = "edge"
  [[clusters.nodes]]
  name = "mec-ilsan-gpu"
  cpu = "16"
  memory = "64Gi"
  gpu = 2

[[latency]]
between = ["c1", "c3"]
ms = 1.0

[[latency]]
between = ["c1", "c2"]
ms = 9.0

[[latency]]
between = ["c1", "c4"]
ms = 5.0
"""

# gs-scheduler test_program/yaml/get-hostname-service-pod.yaml's shape: a Service, then a
# Pod for GEdge's own local scheduler.
SERVICE_AND_POD = b"""apiVersion: v1
kind: Service
metadata:
  name: get-hostname-service-001
spec:
  selector:
    app: get-hostname-001
  ports:
  - protocol: "TCP"
    port: 6000
    targetPort: 5000
  type: NodePort


---
apiVersion: v1
kind: Pod
metadata:
  name: get-hostname-001
  labels:
    app: get-hostname-001
    ge-scheduler: global-01
spec:
  schedulerName: griffin_scheduler
  containers:
  - name: get-hostname-001
    image: dockereyes/get-hostname
    resources:
      limits:
        cpu: "5"
      requests:
        cpu: "3"
    ports:
    - containerPort: 5000
"""

# What gm-tool's CreatePod dialog stringifies (its template, with the dialog's quirks:
# limits.NVIDIAGPU, empty command/args lists).
UI_POD = b"""apiVersion: v1
kind: Pod
metadata:
  name: nginx-ui
  annotations:
    made-by: gm-tool
  labels:
    app: nginx-ui
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  containers:
    - name: nginx
      image: nginx
      command: []
      args: []
      env: []
      ports:
        - containerPort: 80
          protocol: TCP
      resources:
        requests:
          cpu: 500m
          memory: 256Mi
        limits:
          cpu: 1000m
          memory: 512Mi
          NVIDIAGPU: "1"
"""

# gm-tool's CreateDeployment template, followed by a Service (the UI's templates).
UI_DEPLOYMENT_AND_SERVICE = b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {}
  labels:
    app: web
spec:
  selector:
    matchLabels:
      app: web
  replicas: 2
  template:
    metadata:
      annotations: {}
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: nginx
          imagePullPolicy: IfNotPresent
          command: []
          args: []
          resources:
            limits:
              cpu: 500m
              memory: 128Mi
              NVIDIAGPU: ""
            requests:
              cpu: 250m
              memory: 64Mi
          ports:
            - name: http
              containerPort: 80
              protocol: TCP
          envFrom: []
          env: []
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 80
"""

# The v2.0 embedded form (3rd deck p.15): gschConfig in the first container's env, the
# cluster levels as bracket text.
_V2_CONFIG = {
    "type": "global",
    "targetClusters": "[c1,[c2,c3]]",
    "priority": "GLowLatencyPriority",
    "option": {"sourceCluster": "c1", "sourceNode": "c1wnode1"},
}
EMBEDDED_V2 = f"""apiVersion: v1
kind: Pod
metadata:
  name: embedded
  annotations:
    gsch.io/request-id: embedded-v2
spec:
  schedulerName: griffin_scheduler
  containers:
  - name: app
    image: busybox
    resources:
      requests:
        cpu: 100m
    env:
    - name: gschConfig
      value: '{json.dumps(_V2_CONFIG)}'
""".encode()

# The same from v3.5 on (7th deck p.12): snake_case keys, in a multi-document YAML whose
# gschConfig sits in the second document.
_SNAKE_CONFIG = {
    "scope": "global",
    "priority": "GMostRequestedPriority",
    "select_clusters": [["c2", "c3"], "c4"],
}
EMBEDDED_SNAKE = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: snake
  annotations: {{gsch.io/request-id: snake-1}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: snake}}
  template:
    metadata:
      labels: {{app: snake}}
    spec:
      containers:
      - name: app
        image: busybox
        resources:
          requests: {{cpu: 100m}}
        env:
        - name: gschConfig
          value: '{json.dumps(_SNAKE_CONFIG)}'
""".encode()


def ui_options(**option: Any) -> str:
    """`options` as gm-tool sends it: JSON of the v4 option object (URL-encoded by the
    HTTP client, as `encodeURI` does)."""
    return json.dumps(option)


@dataclass
class CallbackReceiver:
    """A real HTTP server on loopback that records every callback it is sent."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    refuse_first: int = 0  # answer 503 to this many calls first
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return web.Response(status=503)
        self.methods.append(request.method)
        self.received.append(await request.json())
        self._arrived.set()
        return web.json_response({"err": None})

    async def wait_for(self, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first callback about `request_id`."""
        async with asyncio.timeout(timeout):
            while True:
                for body in self.received:
                    if body["request_id"] == request_id:
                        return body
                self._arrived.clear()
                await self._arrived.wait()


@asynccontextmanager
async def callback_receiver(path: str = "/callback") -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    app = web.Application()
    app.router.add_route("*", path, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
