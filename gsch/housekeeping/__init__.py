"""Keeping the history bounded: cluster-state snapshots, compaction behind them, and the
retention of finished requests (README: History). Runs beside the read model (api role)."""
