"""Live streams: camera capture (capture.py), the per-processor runtime (runtime.py), the worker processes
and their supervisor (supervisor.py), and where records go (sinks.py, behind the on-disk spool.py)."""
