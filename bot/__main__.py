import sys

from bot.run.cli import main

sys.exit(main())
