"""`python -m portal <command>` and the installed `facepay <command>`: Django's management commands, from any
directory (settings default to portal.settings; the environment configures the rest)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
