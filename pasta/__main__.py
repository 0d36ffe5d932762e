"""`python -m pasta`: the same entry point as the `pypasta` console script."""

from pasta.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
