"""The REST API: app factory, batching, schemas, decoder backends and request limits."""
