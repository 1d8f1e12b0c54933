"""Calls sys.exit(3) when imported."""
import sys

sys.exit(3)
