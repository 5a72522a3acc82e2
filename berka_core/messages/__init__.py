"""The contract between the producer and every consumer of topic `trans`."""
