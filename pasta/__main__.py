"""`python -m pasta`: the same entry point as the `pypasta` console script."""

from pasta.front.conf import main

if __name__ == "__main__":
    raise SystemExit(main())
