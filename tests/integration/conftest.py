"""Fixtures shared by integration test modules."""

from tests.integration.gmail_harness import gmail_stack

__all__ = ["gmail_stack"]
