"""The Dagster code location: definitions, resources, sensors, schedules and jobs."""
