"""Shared code for every step: config, artifact store, registry, lineage, data I/O."""
