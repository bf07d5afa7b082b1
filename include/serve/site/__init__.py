"""The static site: staff dashboards and the public transparency page (``include.serve.site.builder``)."""
