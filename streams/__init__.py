"""Runtimes around the core: replay, the embedded one-process monitor, faust workers on Kafka."""
