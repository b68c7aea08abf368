"""The Dagster code location: definitions, resources, settings, and the easyocc command line."""
