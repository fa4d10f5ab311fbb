"""The config's JSON schema, exported for editors (YAML language servers) and readers.

Validation never reads this file: the Snakefile and the CLI validate against the live typed
models, which include every strategy and space registered by an installed plugin. A test keeps
the committed export of the built-ins current; regenerate it after changing an options model:

    python -m ddpnas.config.export
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from ddpnas.config.models import Config
from ddpnas.config.schema import SCHEMA_FILE, model_schema
from ddpnas.io.files import atomic_write

REGENERATE = "python -m ddpnas.config.export"
HEADER = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "DDPNAS replication suite config",
}


def config_schema() -> dict[str, Any]:
    """The whole config's schema, as committed in config/config.schema.yaml."""
    return {**HEADER, **model_schema(Config)}


def render() -> str:
    """The schema file's text."""
    head = (
        "# Generated from the typed config (ddpnas/config/ and the Options models of the\n"
        f"# registered strategies and spaces) by: {REGENERATE}\n# Do not edit by hand.\n"
    )
    return head + yaml.safe_dump(config_schema(), sort_keys=False, width=96, allow_unicode=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the config's JSON schema (YAML).")
    parser.add_argument("--out", default=SCHEMA_FILE, help=f"default: {SCHEMA_FILE}")
    text = render()
    atomic_write(parser.parse_args(argv).out, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
