"""The typed config: one model per section, validation with one line per bad key, and the JSON
schema exported for editors."""

from ddpnas.config.load import load_config, validate, validate_search

__all__ = ["load_config", "validate", "validate_search"]
