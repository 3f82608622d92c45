"""Seeding a state file from a test, as the daemon's incident core would write it: a new
incident takes the next id, and each write is one `record`."""

from monitor.model import Incident
from monitor.sqlite_file import SqliteFile
from monitor.store import StateChange


def create_incident(file: SqliteFile, incident: Incident) -> Incident:
    """Record `incident` as opened, under the next id; the incident as stored."""
    stored = incident.model_copy(update={"id": file.last_incident_id() + 1})
    file.record(StateChange(opened=[stored]))
    return stored


def save_incident(file: SqliteFile, incident: Incident) -> None:
    file.record(StateChange(saved=[incident]))
