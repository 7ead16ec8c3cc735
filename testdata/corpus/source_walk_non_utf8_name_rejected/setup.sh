set -euo pipefail

mkdir -p src
printf 'ok\n' > src/ok.txt
printf 'bad\n' > $'src/bad\xff.txt'
