"""Keeping the history bounded: cluster-state snapshots, compaction behind them, and the
retention of finished requests (README: History). The housekeeper role, on its own identity."""
