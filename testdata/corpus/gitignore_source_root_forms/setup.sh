set -euo pipefail

# a git work tree at the case root; the source lives in src/
git -c user.name=t -c user.email=t@t -c commit.gpgsign=false -c init.defaultBranch=main init -q
mkdir -p src/pkg src/build/out src/logs src/nested/deeper src/cachedir
printf 'print("main")\n' > src/main.py
printf 'x = 1\n' > src/pkg/mod.py
printf 'secret\n' > src/.env
printf 'artifact\n' > src/build/out/a.bin
printf 'root log\n' > src/app.log
printf 'keep me\n' > src/keep.log
printf 'tracked but ignored\n' > src/tracked.log
printf 'log\n' > src/logs/x.log
printf 'nested ignored\n' > src/nested/local.tmp
printf 'nested re-included\n' > src/nested/deeper/local.tmp
printf 'accent\n' > 'src/é.log'
printf 'space\n' > 'src/with space.log'
printf 'tab\n' > "src/tab$(printf '\t').log"
printf 'data\n' > src/data.csv
printf 'generated\n' > src/generated.py
printf 'excluded via info/exclude\n' > src/secret.txt
printf 'cached\n' > src/cachedir/blob
printf '*.log\n!keep.log\nbuild/\n.env\n/src/generated.py\ncachedir\n' > .gitignore
printf '*.tmp\n' > src/nested/.gitignore
printf '!local.tmp\n' > src/nested/deeper/.gitignore
printf 'secret.txt\n' >> .git/info/exclude
git -c user.name=t -c user.email=t@t -c commit.gpgsign=false -c init.defaultBranch=main add .gitignore src/main.py
git -c user.name=t -c user.email=t@t -c commit.gpgsign=false -c init.defaultBranch=main add -f src/tracked.log
git -c user.name=t -c user.email=t@t -c commit.gpgsign=false -c init.defaultBranch=main commit -q -m init
