"""How a request reaches Azure: credentials, settings, the HTTP transport and the retry policy."""
