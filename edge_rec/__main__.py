import sys

from edge_rec.entry import main

sys.exit(main())
