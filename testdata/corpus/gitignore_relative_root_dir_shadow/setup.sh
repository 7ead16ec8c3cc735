set -euo pipefail

git -c user.name=t -c user.email=t@t -c commit.gpgsign=false -c init.defaultBranch=main init -q
mkdir -p src/src/a
printf 'file a\n' > src/a
printf 'file b\n' > src/b
printf 'inside ignored dir\n' > src/src/a/f
printf '/src/src/a/\n' > .gitignore
