"""Reports: named questions over the tables, answered with DuckDB."""
