"""Per-check history: runs aggregated per minute, hour and day, and the uptime computed from them."""
