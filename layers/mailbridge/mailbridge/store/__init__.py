"""Persistence: the only package that talks to DynamoDB (one repository per table)."""
