"""Fixtures shared by integration test modules."""

from tests.integration.gmail_harness import gmail_stack
from tests.integration.graph_harness import graph_stack

__all__ = ["gmail_stack", "graph_stack"]
