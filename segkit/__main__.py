"""Entry point for `python -m segkit` (used by torchrun launches)."""

from segkit.cli import entry

if __name__ == "__main__":
    raise SystemExit(entry())
