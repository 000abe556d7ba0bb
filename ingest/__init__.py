"""Transport in: MQTT source -> codec -> Kafka sink, acknowledged only after Kafka has it."""
