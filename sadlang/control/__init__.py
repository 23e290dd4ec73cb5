"""Control signals and attention sinks: measured, classified, clustered."""
