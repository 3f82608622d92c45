"""Check plugins. A plugin imports only `checks.base`."""
