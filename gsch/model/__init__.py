"""Domain types: requests, resources, events, and the request state machine. No I/O here."""
