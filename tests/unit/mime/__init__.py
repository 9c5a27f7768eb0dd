"""Unit tests of mailbridge.mime."""
