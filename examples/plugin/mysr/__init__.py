"""A user's own super-resolution code, trained and exported with srdistill without editing it.

``mysr.networks`` is plain PyTorch (no srdistill import); ``mysr.terms`` holds a loss term that
follows srdistill's loss-term contract. See docs/GUIDE.md, "Extending srdistill".
"""
