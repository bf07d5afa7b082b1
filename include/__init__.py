"""Better Work Pakistan data platform: the code that DAGs call."""
