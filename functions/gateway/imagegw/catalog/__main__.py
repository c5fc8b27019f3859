"""``python -m imagegw.catalog`` (``make catalog``): rewrite the parsed copy of models.toml."""

from imagegw.catalog import write_parsed_copy

write_parsed_copy()
