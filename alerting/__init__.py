"""Alert sinks, one folder per provider, and the routing that feeds them."""
