"""Theory of the pruning schedule: failure bounds and their Monte-Carlo check."""
