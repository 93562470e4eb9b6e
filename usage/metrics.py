"""Metric names. The first three are measured by Tenantry itself; any other metric a plan
names in its quotas is a custom metric, fed through the ingestion API."""

API_CALLS = "api_calls"
BANDWIDTH_BYTES = "bandwidth_bytes"
STORAGE_BYTES = "storage_bytes"

BUILT_IN = frozenset({API_CALLS, BANDWIDTH_BYTES, STORAGE_BYTES})
# Counters add up within a period; gauges keep their maximum.
GAUGES = frozenset({STORAGE_BYTES})

THRESHOLDS = (80, 100)
