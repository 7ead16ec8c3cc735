set -euo pipefail
chmod +x app/run.sh
printf 'no\n' > app/secret.txt
mkdir -p app/__pycache__ empty
printf 'pyc\n' > app/__pycache__/main.cpython-311.pyc
