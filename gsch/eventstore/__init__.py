"""The only package that knows JetStream: subjects, headers, appends, reads, consumers."""
