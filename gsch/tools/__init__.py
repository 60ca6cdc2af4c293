"""What people run around the scheduler rather than in it: the demo and its sample requests,
the benchmarks, the progress tracker they share, and the dashboards' generator."""
