set -euo pipefail

mkdir -p withjunk/.git/__pycache__ links
printf 'pyc\n' > withjunk/a.pyc
printf '*\n' > withjunk/.dockerignore
printf '*\n' > withjunk/.gitignore
printf 'head\n' > withjunk/.git/HEAD
printf 'cached\n' > withjunk/.git/__pycache__/x.pyc
printf 'target\n' > links/target.txt
ln -s target.txt links/to_file
ln -s nowhere links/broken
ln -s ../dir links/to_dir
python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.bind("links/sock")'
ln -s dir dirlink
