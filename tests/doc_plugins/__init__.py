"""One plugin per slot, written from docs/plugins.md alone: each imports only the names its
"Names a plugin imports" table lists (tests/test_plugin_docs.py checks that, and uses them)."""
