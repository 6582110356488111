"""Test helpers shared by the whole team: a local registry, OCI image builders, fixtures."""
