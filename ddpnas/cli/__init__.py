"""The ``ddpnas`` command line: one module per command group, shared arguments in ``args``."""
