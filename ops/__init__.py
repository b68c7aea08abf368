"""Pure compute: geometry, ray walking, metrics, the demo world. No Dagster. One process-wide setting,
ops.runtime.AUTO_DEVICE (what "auto" resolves to; the tests pin it to the CPU); nothing else is global."""
