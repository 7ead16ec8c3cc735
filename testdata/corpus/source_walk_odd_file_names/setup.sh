set -euo pipefail

mkdir -p src
printf 1 > "src/with space"
printf 2 > "src/new$(printf '\n_')line"
printf 3 > "src/tab$(printf '\t')name"
printf 4 > 'src/back\slash'
printf 5 > "src/quote'single"
printf 6 > 'src/quote"double'
printf 7 > 'src/-leading-dash'
printf 8 > 'src/中文.py'
printf 9 > 'src/emoji😀'
printf 10 > "src/cr$(printf '\r')name"
printf 11 > $'src/nl_end\n'
printf 12 > 'src/*star?'
printf 13 > 'src/[brackets]'
printf 14 > $'src/zwsp\u200b'
printf 15 > $'src/ctrl\x01\x7f'
printf 16 > 'src/ nbsp lead'
printf 'nl_end\ntab*\n' > src/.dockerignore
