"""Tables and figures built from search records."""
