set -euo pipefail
# Entries named like flytekit's own context files. Made here so that a Dockerfile or a
# requirements_uv.txt is never committed where tools would pick it up.
printf 'FROM scratch\n' > Dockerfile
printf 'pandas==2.0\n' > requirements_uv.txt
