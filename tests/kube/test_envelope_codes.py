"""gsch's agent protocol is its own: no hcode means one thing in GEdge and another in gsch."""

from __future__ import annotations

from gsch.kube import envelope

# GEdge's cluster-agent dispatch table (cluster_agent/GE_GSCH_cluster_agent.py), by meaning.
GEDGE = {
    200: "measure latency",
    210: "apply with the low-latency local scheduler",
    300: "report resources",
    310: "apply with the most-requested local scheduler",
    400: "apply",
    520: "create or delete namespaces",
    530: "find a pod's node",
    900: "error",
}
GSCH = {
    envelope.HCODE_BIND: "apply",
    envelope.HCODE_REMOVE: "remove",
    envelope.HCODE_HEARTBEAT: "heartbeat",
    envelope.HCODE_ERROR: "error",
}


def test_no_code_means_two_things() -> None:
    clashes = {code: (GEDGE[code], meaning) for code, meaning in GSCH.items()
               if code in GEDGE and GEDGE[code] != meaning}  # fmt: skip
    assert clashes == {}
