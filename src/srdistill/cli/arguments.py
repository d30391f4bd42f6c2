"""The argument parser of srdistill's argparse commands (``srdistill-report``, the scripts and
benchmarks): an option error is one ``error:`` line and exit code 2, as every user error is."""

from __future__ import annotations

import argparse
import sys


class OneLineErrorParser(argparse.ArgumentParser):
    """Option errors as one ``error:`` line and exit 2, like every other user error here."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
