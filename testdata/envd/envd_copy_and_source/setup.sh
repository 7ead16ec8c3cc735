set -euo pipefail
chmod +x src/run.sh
mkdir -p empty
