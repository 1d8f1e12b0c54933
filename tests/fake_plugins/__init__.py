"""Plugin modules for the loader tests, loaded through hand-made entry points."""
