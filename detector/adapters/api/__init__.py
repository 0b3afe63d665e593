"""The authenticated HTTP API: client risk, decisions for the serving tier, alerts, health and metrics."""
