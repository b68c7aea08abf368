"""The Dagster code location: the Definitions, jobs and schedules, resources, the run configs generated
from the ops' config dataclasses, the value store between assets, the settings read from the
environment, and the easyocc command line."""
