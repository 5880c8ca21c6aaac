"""Persistence: the SQL database (metadata, vectors as the source of truth) and the vector index."""
