"""An in-repo fake Kubernetes API server for tests."""
