"""``python -m course_lib``: the command line (``course_lib.cli``). Ctrl-C while it starts (importing torch takes a
few seconds) exits with code 130 and one line, as Ctrl-C later does."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:
    print("error: interrupted while starting up", file=sys.stderr)
    raise SystemExit(130)

raise SystemExit(main())
