import sys

from wrencos.cli import main

sys.exit(main())
