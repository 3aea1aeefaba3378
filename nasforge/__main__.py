from __future__ import annotations

from nasforge.cli.main import main

raise SystemExit(main())
