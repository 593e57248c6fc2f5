#!/usr/bin/env bash
# scripts/sizes.sh [MAX_FN_LINES [MAX_FILE_LINES]] — the size rules of issue 12:
# functions over MAX_FN_LINES (default 100) lines outside the front ends
# (apps/), and library files over MAX_FILE_LINES (default 600) lines whose
# first comment does not give a reason ("Over N lines because ..." / "long
# because").  Prints "file:line: name N lines" and "file: N lines", then a
# count; exits 1 when there is any.  C and CUDA sources of the library
# folders; comments, strings and characters are blanked before braces are
# counted, and top-level data (an initialiser after '=') is not a function.
set -euo pipefail
cd "$(dirname "$0")/.."
fn_max=${1:-100}
file_max=${2:-600}
dirs=(base sim viz text engine serve hub labs)
files=$(for d in "${dirs[@]}"; do ls "$d"/*.c "$d"/*.cu "$d"/*.cuh "$d"/*.h 2>/dev/null || true; done)
n=0
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
  if [ -n "$out" ]; then echo "$out"; n=$((n + $(echo "$out" | wc -l))); fi
  lines=$(wc -l < "$f")
  if [ "$lines" -gt "$file_max" ] && ! head -20 "$f" | grep -qiE "over [0-9,]+ lines because|long because"; then
    echo "$f: $lines lines"; n=$((n + 1))
  fi
done
echo "$n over the limits (functions > $fn_max lines outside apps/, library files > $file_max lines without a reason at the top)"
[ "$n" -eq 0 ]
