"""Extract: land the sources' files and rows, unchanged, for validation (the data's first step)."""
