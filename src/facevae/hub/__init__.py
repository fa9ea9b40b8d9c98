"""Models on disk: bundles, loading by name or path, the pretrained registry and its downloads."""
