#!/usr/bin/env bash
# The workflow on a real single-node SLURM cluster (run by .ci/run; needs root and apt).
#
#   bash tests/slurm/run.sh            # PYTHON=.venv/bin/python by default
#
# 1. starts munged, slurmctld and slurmd with two fake GPUs (start-slurm.sh);
# 2. runs a reduced demo with longer searches through `--profile WORK/profile` (a copy of
#    profiles/slurm outside the repository with its SITE placeholders filled, see smoke.py, as
#    the README says), GPU rules asking for gpu=1, and stops it with SIGINT once a search runs:
#    Snakemake must cancel its SLURM jobs and leave none queued;
# 3. unlocks and runs the reduced demo to the end with one transfer job failing once on purpose
#    (AUGLOSS_FAIL_ONCE); the rule's `retries:` must recover it;
# 4. runs one search and one training job under a 1-minute SLURM time limit: SLURM kills each
#    (state TIMEOUT), `retries:` resubmits it, it continues from its saved state, and its
#    outputs equal an uninterrupted local run's byte for byte (smoke.py timeout);
# 5. stops the daemons by PID (stop-slurm.sh), whatever happened.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

if [ "$(id -u)" != 0 ]; then
  echo "slurm: skipped: not root (starting slurmctld/slurmd needs root)"
  exit 0
fi
if ! command -v slurmctld >/dev/null; then
  if ! command -v apt-get >/dev/null || ! apt-get update -qq >/dev/null 2>&1; then
    echo "slurm: skipped: SLURM is not installed and apt-get cannot install it here"
    exit 0
  fi
fi

export STATE=$(mktemp -d /tmp/augloss-slurm-state.XXXXXX)
WORK=$(mktemp -d /tmp/augloss-slurm-work.XXXXXX)
trap 'bash "$REPO/tests/slurm/stop-slurm.sh"' EXIT
start=$(date +%s)
FAKE_GPUS=2 bash tests/slurm/start-slurm.sh
echo "slurm: cluster up in $(( $(date +%s) - start )) s"

"$PYTHON" tests/slurm/smoke.py setup "$WORK" "$(nproc)" 2
base=("$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORK"
      --profile "$WORK/profile")
smk=("${base[@]}" --configfile "$WORK/config.yaml")

# --- 2. interrupt with SIGINT once a search runs (SIGTERM would wait for the jobs) ----------
# (its own experiment, interrupt.yaml, whose searches run for minutes: see smoke.py)
stopped=$("$PYTHON" tests/slurm/smoke.py interrupt "$WORK" -- "${base[@]}" \
  --configfile "$WORK/interrupt.yaml")
echo "slurm: SIGINT stopped the run and cancelled its SLURM jobs: $stopped"

# --- 3. unlock, rerun to the end, with one injected failure --------------------------------
"${smk[@]}" --unlock > /dev/null 2>&1
retried=base/ce/seed0
t0=$(date +%s)
if ! AUGLOSS_FAIL_ONCE="train_transfer@$retried" timeout -s INT -k 60 1500 "${smk[@]}" \
    > "$WORK/run.log" 2>&1; then
  echo "slurm: the workflow failed" >&2
  tail -60 "$WORK/run.log" >&2
  exit 1
fi
wall=$(( $(date +%s) - t0 ))
# The failed attempt and its retry are in the SLURM job's log (kept by the CI profile).
joblog=$(ls "$WORK"/results/slurm-logs/rule_train_transfer/digits_base_ce_0/*.log)
grep -q "injected one-off failure" $joblog ||
  { echo "slurm: no sign of the injected failure in $joblog" >&2; exit 1; }
steps=$(grep -o '[0-9]* of [0-9]* steps (100%) done' "$WORK/run.log" | tail -1)
submitted=$(grep -c "has been submitted with SLURM jobid" "$WORK/run.log")
summary=$("$PYTHON" tests/slurm/smoke.py check "$WORK" "$retried")
echo "slurm: rerun finished: $steps ($submitted submitted to SLURM, the rest local rules)" \
  "in $wall s; $summary"

# --- 4. time limits: a search and a training run killed by SLURM (TIMEOUT) resume on retry -
# The reference: the same targets run locally without interruption, compared byte for byte.
REF=$(mktemp -d /tmp/augloss-slurm-ref.XXXXXX)
targets=$("$PYTHON" tests/slurm/smoke.py setup-timeout "$WORK")
"$PYTHON" tests/slurm/smoke.py setup-timeout "$REF" > /dev/null
t0=$(date +%s)
if ! "$PYTHON" -m snakemake $targets --snakefile "$REPO/Snakefile" --directory "$REF" \
    --cores "$(nproc)" --resources gpu=0 --configfile "$REF/timeout.yaml" > "$REF/run.log" 2>&1; then
  echo "slurm: the uninterrupted reference run failed" >&2
  tail -40 "$REF/run.log" >&2
  exit 1
fi
ref_wall=$(( $(date +%s) - t0 ))
t0=$(date +%s)
summary=$("$PYTHON" tests/slurm/smoke.py timeout "$WORK" "$REF" -- "$PYTHON" -m snakemake \
  $targets --snakefile "$REPO/Snakefile" --directory "$WORK" \
  --profile "$WORK/profile" --configfile "$WORK/timeout.yaml")
echo "slurm: 1-minute limits: reference ${ref_wall} s, SLURM run $(( $(date +%s) - t0 )) s; $summary"
rm -rf "$WORK" "$REF"
