#!/usr/bin/env bash
# Submit a whole synthq job to Slurm: prepare, then an array of shards
# (afterok), then the merge (afterok on every shard). Prints the three job
# ids on one line: PREPARE ARRAY MERGE.
#
#   SYNTHQ_WORK=/shared/job1 SYNTHQ_CONFIG=/shared/job1/job.yaml SYNTHQ_SHARDS=8 \
#     bash deploy/slurm/submit.sh [extra sbatch options, e.g. --partition=cpu]
#
# Watch it:     synthq stats --merge $SYNTHQ_WORK/shard*/store
# A task died:  sbatch --array=<i> deploy/slurm/shards.sbatch, then
#               scontrol update JobId=<MERGE> Dependency=afterok:<new job id>
#               (the merge of a failed array waits with DependencyNeverSatisfied)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SYNTHQ_WORK:?set SYNTHQ_WORK to a folder every node sees}"
: "${SYNTHQ_CONFIG:?set SYNTHQ_CONFIG to the YAML settings of the job}"
export SYNTHQ_SHARDS=${SYNTHQ_SHARDS:-4}
mkdir -p "$SYNTHQ_WORK"
common=(--parsable --chdir="$SYNTHQ_WORK" --export=ALL "$@")
prep=$(sbatch "${common[@]}" "$here/prepare.sbatch")
array=$(sbatch "${common[@]}" --array="0-$((SYNTHQ_SHARDS - 1))" --dependency="afterok:$prep" "$here/shards.sbatch")
merge=$(sbatch "${common[@]}" --dependency="afterok:$array" --kill-on-invalid-dep=no "$here/merge.sbatch")
echo "$prep $array $merge"
