"""lpq: compact soft labels for large-scale dataset distillation (LPQLD), around the `.lpql` container."""

__version__ = "0.1.0"
