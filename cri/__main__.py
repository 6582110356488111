import sys

from cri.daemon import main

sys.exit(main())
