"""Heartbeat checks: cron jobs and scripts ping the daemon; a missing, failed or overlong run is a finding."""

from checks.heartbeat.check import HeartbeatCheck
from checks.heartbeat.config import HeartbeatConfig

__all__ = ["HeartbeatCheck", "HeartbeatConfig"]
