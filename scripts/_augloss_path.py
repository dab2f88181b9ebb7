"""Put the workflow's own ``augloss`` (the package beside ``scripts/``) first on ``sys.path``.

Every rule's script imports this before ``augloss``. Snakemake runs a script from a copy under
``.snakemake/scripts/`` and appends the script's own directory to ``sys.path``, so this module is
found; it then makes ``import augloss`` load the code of the workflow being run, whether or not
augloss is installed in the job's environment (``--sdm conda`` and ``--sdm apptainer`` install
only the dependencies) and whatever other version is installed there.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
