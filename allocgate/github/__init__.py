"""Talking to GitHub: REST client (client.py), the sticky comment (comment.py),
the job summary and step outputs (summary.py), the Actions context (context.py)."""
