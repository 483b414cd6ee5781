"""Database access: engine, tables, the embedded server and migrations."""
