"""Pure compute: geometry, ray walking, metrics, the demo world. No Dagster, no global state."""
