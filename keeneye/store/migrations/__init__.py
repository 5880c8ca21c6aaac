"""Alembic migrations of the keeneye schema (run by ``Store.upgrade``)."""
