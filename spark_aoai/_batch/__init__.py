"""Batch mode without Spark: the Files/Batch client, the JSONL lines, the results, the service loop."""
