"""A plugin whose module cannot be imported (a dependency is missing)."""
import ocrframe_dependency_that_is_not_installed  # noqa: F401

from ocrframe import hookimpl


@hookimpl
def ocrframe_register(slots):
    raise AssertionError("never reached")
