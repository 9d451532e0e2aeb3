#!/bin/bash
# Queue a sharded dicomguard survey on Slurm: the array of shards, then the merge, which
# starts only when every array task has succeeded (afterok), and the Parquet/HTML reports.
#   bash docs/survey/slurm-sharded-scan.sh
set -euo pipefail
here=$(dirname "$0")
mkdir -p results
scan=$(sbatch --parsable "$here/slurm-shard.sbatch")
scan=${scan%%;*}  # --parsable prints "jobid" or "jobid;cluster"
sbatch --dependency="afterok:${scan}" --job-name=dicomguard-merge \
    --output=results/slurm-merge-%j.out \
    --wrap "dicomguard merge results/shard-*.db -o results/all.db \
        && dicomguard report results/all.db --format parquet -o results/all.parquet \
        && dicomguard report results/all.db -o results/report.html"
echo "queued scan array ${scan} and its merge"
