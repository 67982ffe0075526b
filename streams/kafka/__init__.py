"""The distributed runtime: faust-streaming workers on Kafka around the same engine."""
