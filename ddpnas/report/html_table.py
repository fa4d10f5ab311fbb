"""A table as a small standalone HTML page, for the Snakemake report.

The report shows an HTML result inline (in a frame) but offers every other file, Markdown
included, only as a download; so each table is also written as a page: its title as the table's
caption, the formatted cells, and the notes (provenance, sources) under it. The page needs no
script and no network, and the few Markdown marks the tables use (``**bold**``, `` `code` ``)
become tags.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import pandas as pd

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
caption { caption-side: top; text-align: left; font-weight: 600; font-size: 1.1em;
          padding-bottom: 0.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
code { font-size: 0.9em; overflow-wrap: anywhere; }
ul.notes { font-size: 0.9em; max-width: 70em; }
"""


def inline(text: object) -> str:
    """Escaped text with ``**bold**`` and `` `code` `` as tags (what the table cells use)."""
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def table_html(display: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """The page: one captioned table (header row from the columns), then the notes."""
    head = "".join(f"<th>{inline(c)}</th>" for c in display.columns)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{inline(v)}</td>" for v in row) + "</tr>"
        for row in display.itertuples(index=False)
    )
    items = "".join(f"<li>{inline(n)}</li>" for n in notes)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<table>\n<caption>{inline(title)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody>\n</table>\n"
        + (f'<ul class="notes">{items}</ul>\n' if notes else "")
        + "</body>\n</html>\n"
    )
