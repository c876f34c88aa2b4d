"""The only code that imports `wandb`: connecting and the API pool, queries, parquet downloads, and
the reading of wandb's errors into ours. Everything above it sees plain data and our error types."""
