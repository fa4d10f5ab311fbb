"""DDPNAS replication suite: search, generation, retraining and reporting."""

__version__ = "0.1.0"
