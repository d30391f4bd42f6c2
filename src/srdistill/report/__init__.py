"""``srdistill-report``: a sweep's results.json files as tables, beside the papers' numbers."""
