"""`gsch experiment`: the GEdge seed's YOLO4 evaluation through gsch's real pipeline.

`scenario` reads the scenario file (and its topology) and makes the arrivals and requests;
`pipeline` runs an embedded nats-server, the simulator's binder and competing worker
processes, and follows what becomes of each request; `runner` plays the scenarios for every
policy (and the sweep of the far round trip); `report` prints the table, the assumptions and
writes the chart.
"""
