"""``python -m course_lib``: the command line (``course_lib.cli``). Ctrl-C while it starts (importing torch takes a
few seconds) exits with code 130 and one line, as Ctrl-C later does."""
import os
import sys

try:
    from . import cli
except KeyboardInterrupt:
    print("error: interrupted while starting up", file=sys.stderr)
    raise SystemExit(130)

code = cli.main()
if cli.CTRL_C:  # a Ctrl-C that cut an import short can make the interpreter re-raise SIGINT at exit: leave now
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
