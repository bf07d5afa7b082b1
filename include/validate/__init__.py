"""Validate: Great Expectations suites and the project's row rules, run on a staged batch."""
