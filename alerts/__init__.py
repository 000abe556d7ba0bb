"""Everything after the stream: rules, the worker loops, alert and telemetry storage."""
