"""`python -m modelhost.container`: one instance process (see `container.config`)."""

from modelhost.container.server import main

raise SystemExit(main())
