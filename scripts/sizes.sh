#!/usr/bin/env bash
# scripts/sizes.sh [--root DIR] [--allow FILE] [MAX_FN_LINES [MAX_FILE_LINES]] — the size
# rules of issue 12: functions over MAX_FN_LINES (default 100) lines outside the front ends
# (apps/), and library files over MAX_FILE_LINES (default 600) lines whose first comment
# does not give a reason ("Over N lines because ..." / "long because").  Prints
# "file:line: name N lines" and "file: N lines", then a count; exits 1 when there is any.
# C and CUDA sources of the library folders; comments, strings and characters are blanked
# before braces are counted, and top-level data (an initialiser after '=') is not a function.
#
# The allowlist (--allow, default scripts/sizes_allow.txt under the root) names functions
# that may stay over the limit, one a line: "FILE FUNCTION MAX_LINES REASON...".  Such a
# function is listed as "allowed:" while it is at most MAX_LINES long; longer, it counts.
# An entry without a reason, or one that matches no function over the limit (split or
# renamed since), counts too, so the list cannot rot.  --root checks another tree (the
# test's planted ones).  `make test` runs this through tests/test_sizes.c.
set -euo pipefail
root="$(dirname "$0")/.."
allow=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --allow) allow=$(realpath -m "$2"); shift 2 ;;
    *) break ;;
  esac
done
cd "$root"
[ -n "$allow" ] || allow="$PWD/scripts/sizes_allow.txt"
fn_max=${1:-100}
file_max=${2:-600}
dirs=(base sim viz text engine serve hub labs)
files=$(for d in "${dirs[@]}"; do ls "$d"/*.c "$d"/*.cu "$d"/*.cuh "$d"/*.h 2>/dev/null || true; done)

# the allowlist: a_file a_name a_max a_used, by entry; a bad entry counts at once
a_file=(); a_name=(); a_max=(); a_line=(); a_used=()
n=0
if [ -f "$allow" ]; then
  ln=0
  while IFS= read -r row || [ -n "$row" ]; do
    ln=$((ln + 1))
    case "$row" in ''|'#'*) continue ;; esac
    read -r f_ nm_ mx_ why_ <<< "$row"
    if [ -z "${why_:-}" ] || ! [[ "${mx_:-}" =~ ^[0-9]+$ ]]; then
      echo "$allow:$ln: an entry is FILE FUNCTION MAX_LINES REASON"; n=$((n + 1)); continue
    fi
    a_file+=("$f_"); a_name+=("$nm_"); a_max+=("$mx_"); a_line+=("$ln"); a_used+=(0)
  done < "$allow"
fi

for f in $files; do
  out=$(awk -v max="$fn_max" -v file="$f" '
    BEGIN { depth = 0; incomment = 0 }
    {
      line = $0
      # blank comments (also across lines), strings and character literals
      if (incomment) { if (match(line, /\*\//)) { line = substr(line, RSTART + 2); incomment = 0 } else next }
      gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line)
      if (match(line, /\/\*/)) { line = substr(line, 1, RSTART - 1); incomment = 1 }
      sub(/\/\/.*/, "", line)
      gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
      gsub(/'\''([^'\''\\]|\\.)*'\''/, "0", line)
      if (depth == 0 && line ~ /^[A-Za-z_]/ && line !~ /^(typedef|struct|enum|union|static const|const|extern)/) {
        head = line; headno = NR
      }
      opens = gsub(/\{/, "{", line); closes = gsub(/\}/, "}", line)
      if (depth == 0 && opens > closes) {
        isfn = (head != "" && head ~ /\(/ && line !~ /=[^=]*\{/ && head !~ /=/)
        start = NR; name = head
      }
      depth += opens - closes
      if (depth == 0 && start) {
        len = NR - start + 1
        if (isfn && len > max) {
          sub(/\(.*/, "", name); n2 = split(name, w, /[ *]+/)
          printf "%s:%d: %s %d lines\n", file, headno, w[n2], len
        }
        start = 0; head = ""
      }
    }' "$f")
  while IFS= read -r o; do
    [ -n "$o" ] || continue
    name=${o#*: }; name=${name%% *}; len=${o% lines}; len=${len##* }
    verdict=""
    for i in "${!a_file[@]}"; do
      if [ "${a_file[$i]}" = "$f" ] && [ "${a_name[$i]}" = "$name" ]; then
        a_used[$i]=1
        if [ "$len" -le "${a_max[$i]}" ]; then verdict="allowed"
        else verdict="grown"; o="$o (the allowlist allows ${a_max[$i]})"; fi
      fi
    done
    if [ "$verdict" = allowed ]; then echo "allowed: $o"
    else echo "$o"; n=$((n + 1)); fi
  done <<< "$out"
  lines=$(wc -l < "$f")
  if [ "$lines" -gt "$file_max" ] && ! head -20 "$f" | grep -qiE "over [0-9,]+ lines because|long because"; then
    echo "$f: $lines lines"; n=$((n + 1))
  fi
done
for i in "${!a_file[@]}"; do
  if [ "${a_used[$i]}" = 0 ]; then
    echo "$allow:${a_line[$i]}: ${a_file[$i]} ${a_name[$i]} is not over the limit: remove the entry"
    n=$((n + 1))
  fi
done
echo "$n over the limits (functions > $fn_max lines outside apps/, library files > $file_max lines without a reason at the top)"
[ "$n" -eq 0 ]
