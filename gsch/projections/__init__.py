"""The SQLite read model: a projection of the event log that the HTTP API reads.

`Projector` follows the log and applies events in batched transactions with a checkpoint;
`ReadModel` opens read-only snapshots of it; `rebuild` throws it away and replays the log.
"""

from gsch.projections.projector import Projector, rebuild
from gsch.projections.reader import ReadModel

__all__ = ["Projector", "ReadModel", "rebuild"]
