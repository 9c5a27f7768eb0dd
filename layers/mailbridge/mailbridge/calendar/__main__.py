import sys

from mailbridge.calendar.cli import main

sys.exit(main())
