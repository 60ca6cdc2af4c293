"""How a gsch process runs: its configuration, its NATS connection (or the embedded
nats-server it starts), child processes, and `service.serve`, which assembles the roles."""
