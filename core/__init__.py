"""The shared Lambda layer: settings, HTTP, cache, store and observability for every domain."""
