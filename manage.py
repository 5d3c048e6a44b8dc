#!/usr/bin/env python
"""Django's management commands from a source checkout (an installed project runs `facepay` or `python -m portal`)."""

from portal.__main__ import main

if __name__ == "__main__":
    main()
