"""The worker process: take a request, claim it, plan it on the snapshot, commit the placement."""
