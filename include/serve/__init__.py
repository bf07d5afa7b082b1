"""Serve: what people receive from the warehouse: research releases, the static site, database roles."""
