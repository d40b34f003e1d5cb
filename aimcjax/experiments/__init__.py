"""Paper reproductions and sweeps as plain functions returning results dicts."""
