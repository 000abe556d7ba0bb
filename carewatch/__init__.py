"""carewatch: event ingestion and alerting for smart-aging programmes."""
