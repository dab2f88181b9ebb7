"""``python -m augloss``: the ``augloss`` command (:mod:`augloss.cli`)."""

from augloss.cli import main

raise SystemExit(main())
