"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class DDPNASError(Exception):
    """An error caused by the user's input or environment; its message says what to do."""


class ArchError(DDPNASError, ValueError):
    """An architecture string or vector that does not belong to the search space."""


class DataError(DDPNASError, FileNotFoundError):
    """Missing or corrupt data (datasets, benchmark tables)."""


class ConfigError(DDPNASError, ValueError):
    """A config key that is unknown, ill-typed or inconsistent."""


class StaleCheckpointError(DDPNASError):
    """A readable checkpoint of another run (config, seed, model, code version or runtime)."""
