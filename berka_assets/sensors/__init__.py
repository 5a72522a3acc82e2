"""Sensors: Kafka offsets -> micro-batch runs; streaming-job health -> observations."""
