"""mailbridge: the shared layer package (services, stores, adapters) behind every Lambda."""

__version__ = "0.1.0"
