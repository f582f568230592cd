import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line loads: the same one line as later on
    print("sim: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
