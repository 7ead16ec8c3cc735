set -euo pipefail

mkdir -p src
printf 'a\n' > src/a.txt
printf 'b\n' > src/b.py
printf '*.txt\n' > src/.gitignore
