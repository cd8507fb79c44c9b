"""The contract every layer shares: error codes, rows' results, units, constants, bounded JSON, Arrow columns."""
