"""The floor every carewatch process stands on: settings, Kafka, MQTT and PostgreSQL
helpers, schema migrations, `/metrics` and `/healthz`, structured logs, the supervised
component, backoff, and the process entry point.

It imports none of carewatch's feature packages (`devices`, `ingest`, `alerts`,
`simulators`) nor the application (`carewatch`); they import it. A test checks this from
the source (tests/unit/test_layers.py).
"""
