set -euo pipefail

mkdir -p src/__pycache__
printf 'bytecode\n' > src/__pycache__/main.cpython-311.pyc
