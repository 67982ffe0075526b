"""The pure core: legal clock, rule engine, referrals. No I/O, no wall clock, no Kafka."""
