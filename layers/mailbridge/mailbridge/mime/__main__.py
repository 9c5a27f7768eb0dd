import sys

from mailbridge.mime.cli import main

sys.exit(main())
