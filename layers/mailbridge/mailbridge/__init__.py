"""mailbridge: the shared layer package (services, stores, adapters) behind every Lambda."""
