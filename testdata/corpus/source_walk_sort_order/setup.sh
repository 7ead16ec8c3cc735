set -euo pipefail

mkdir -p src/a/b src/ab src/A
for f in a.txt a-b a0 B _x '~' Z a/b.txt a/b/c.txt A/x 'é' 'ß' 'Ω' '中' '😀' '.dot' '-dash' '0' '9z'; do printf '%s\n' "$f" > "src/$f"; done
printf 'X\n' > src/ab/c
printf 'Y\n' > src/a/bc
