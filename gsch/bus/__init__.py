"""Who may do what on the NATS bus: the roles and their permissions, NKey identities, and
the nats-server configuration rendered from them (DESIGN §2 principle 7, least privilege)."""
