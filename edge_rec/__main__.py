import sys

from edge_rec.cli import main

sys.exit(main())
