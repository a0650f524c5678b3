"""What every command shares: the usage error, the one-line parser, output and stderr."""
from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2  # argparse's own code for bad input


class UsageError(Exception):
    """Bad input found after parsing: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def write(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError as error:
        raise UsageError(f"cannot write {path!r}: {error.strerror}") from None


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
