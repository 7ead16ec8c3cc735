set -euo pipefail
chmod +x tool.sh
mkdir -p emptydir links/real
printf 'target\n' > links/target.txt
printf 'inner\n' > links/real/inner.txt
ln -s target.txt links/to_file
ln -s real links/to_dir
