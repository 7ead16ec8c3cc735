set -euo pipefail
mkdir -p src/__pycache__ src/.cache/inner src/sub/__pycache__ src/sub2/.cache src/deep/a/__pycache__ src/pkg src/sub3
printf 'pyc\n' > src/a.pyc
printf 'py\n' > src/b.py
printf 'cached\n' > src/__pycache__/b.cpython-311.pyc
printf 'notes\n' > src/__pycache__/notes.txt
printf 'c\n' > src/.cache/x
printf 'ci\n' > src/.cache/inner/y
printf 'sub cache file\n' > src/sub/.cache
printf 'sub pyc dir\n' > src/sub/__pycache__/z.txt
printf 'sub2 cache\n' > src/sub2/.cache/y
printf 'deep\n' > src/deep/a/__pycache__/w
printf 'pyc txt\n' > src/x.pyc.txt
printf 'upper\n' > src/X.PYC
printf 'cachefile\n' > src/.cachefile
printf 'pkg pyc\n' > src/pkg/mod.pyc
printf 'pycache file\n' > src/sub3/__pycache__
