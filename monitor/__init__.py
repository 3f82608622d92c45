"""health-monitor: runs checks, turns findings into P1-P4 incidents, pages people."""

__version__ = "0.1.0"
