"""Plug-ins of the engine: the response cache, the spend cap, statistics, prices, estimates, progress."""
