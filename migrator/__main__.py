"""`python -m migrator` and the `migrator` command: the signal handlers before the imports."""

from migrator import signals


def main() -> None:
    signals.launch()


if __name__ == "__main__":
    main()
