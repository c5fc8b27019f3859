"""``python -m imagegw.cli``: the ``imagegw`` command without installing the package."""

from imagegw.cli.app import main

raise SystemExit(main())
