"""Alembic migrations of the index database (env.py, one file per revision under versions/)."""
