set -euo pipefail
mkdir -p __pycache__ .cache/inner sub/__pycache__ sub2/.cache deep/a/__pycache__ pkg sub3
printf 'pyc\n' > a.pyc
printf 'py\n' > b.py
printf 'cached\n' > __pycache__/b.cpython-311.pyc
printf 'notes\n' > __pycache__/notes.txt
printf 'c\n' > .cache/x
printf 'ci\n' > .cache/inner/y
printf 'sub cache file\n' > sub/.cache
printf 'sub pyc dir\n' > sub/__pycache__/z.txt
printf 'sub2 cache\n' > sub2/.cache/y
printf 'deep\n' > deep/a/__pycache__/w
printf 'pyc txt\n' > x.pyc.txt
printf 'upper\n' > X.PYC
printf 'cachefile\n' > .cachefile
printf 'pkg pyc\n' > pkg/mod.pyc
printf 'pycache file\n' > sub3/__pycache__
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
