set -euo pipefail
# Python reads requirements with readlines() in text mode (universal newlines: \r\n and a
# lone \r end lines too) and str.strip()s each line (U+001C..U+001F are whitespace to it).
printf 'numpy\r\npandas\rscipy\037\n\n\xc2\xa0rich\xc2\xa0\n' > req_newlines.txt
