"""``python -m srdistill.report``: the same as ``srdistill-report``."""

from srdistill.report.cli import main

if __name__ == "__main__":
    main()
