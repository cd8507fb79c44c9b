"""Wire formats, one module per API: the body for an item, the answer parsed into values or errors, the route.

They are pure functions of dicts (no HTTP, no threads, no Spark), so tables of answers test them directly.
"""
