"""The Spark adapters: Params, the stage base, SQL functions, similarity, batch jobs, re-runs, usage and
observation."""
