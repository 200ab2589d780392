"""Domain rules: pure functions and typed settings (no I/O, no database, no models)."""
