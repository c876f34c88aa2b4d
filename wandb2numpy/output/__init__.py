"""The output stage: formats, the atomic folder swap and its manifest, the lock, the checks made
before the first request, and `load`, the way back from files to arrays."""
