"""Replicas on one PostgreSQL: exactly one leader, the others standing by.

- `lease`: the pure timing rules (when to renew, when a leader stops trusting itself).
- `sql`: the lease and membership tables and every statement run on them.
- `elector`: one replica's campaign, on a dedicated connection, that promotes and demotes it.
- `fence`: leader-only writes that carry the epoch; a stale one changes nothing.
- `supervisor`: starts the leader's work on election and stops all of it on losing the lease.
- `replicated`: the daemon's cluster on PostgreSQL (the elector hands each term to the daemon).
- `single`: a SQLite setup, one process that is always the leader (promoted once, at start).
- `view`, `api`, `command`: who is in the cluster, for `GET /api/cluster` and `health-monitor cluster`.
"""
