"""The human review queue (issue 14): every identification waits for a person to confirm, reject or mark
it unsure (queue.py); rejected probes are kept as negatives for the person they wrongly matched
(negatives.py)."""
