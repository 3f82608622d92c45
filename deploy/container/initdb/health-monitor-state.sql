-- The replicas' shared state (deploy/container/replicas.toml), in a database of its own beside
-- the application's. Run once, when the db volume is first initialised.
CREATE DATABASE health_monitor OWNER monitor;
