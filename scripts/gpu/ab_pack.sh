#!/usr/bin/env bash
# Here, from the repository root: the two source snapshots scripts/gpu/ab_run.sh
# compares.  before = a commit (default HEAD); after = that commit plus the
# named paths as they are in the working tree (default: none, i.e. HEAD again),
# so that other engineers' unfinished edits stay out.
#   scripts/gpu/ab_pack.sh [BEFORE_REV] [PATH...]
set -eu
cd "$(dirname "$0")/../.."
rev=${1:-HEAD}; shift || true
mkdir -p .carry/ab
git archive "$rev" -o .carry/ab/before.tar
idx=$(mktemp); trap 'rm -f "$idx"' EXIT
GIT_INDEX_FILE=$idx git read-tree HEAD
[ $# -gt 0 ] && GIT_INDEX_FILE=$idx git add -- "$@"
git archive "$(GIT_INDEX_FILE=$idx git write-tree)" -o .carry/ab/after.tar
ls -la .carry/ab
