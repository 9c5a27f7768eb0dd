"""Pydantic domain models shared by services, stores and the API."""
