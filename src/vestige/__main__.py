"""`python -m vestige` is the same as the `vestige` command."""

from vestige.cli import main

raise SystemExit(main())
