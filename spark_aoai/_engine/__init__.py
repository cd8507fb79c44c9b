"""The per-partition engine: the plan, the partition runner, the sender loop, rate control, dedup, failover and the
hooks plug-ins implement."""
