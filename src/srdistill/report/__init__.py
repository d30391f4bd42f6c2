"""``srdistill-report``: a sweep's results.json files as tables and trade-off figures (PSNR
against parameters and against FLOPs), beside the papers' numbers."""
