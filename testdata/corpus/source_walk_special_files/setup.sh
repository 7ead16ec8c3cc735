set -euo pipefail

mkdir -p src/pkg/.git/objects src/wt src/real_dir src/emptydir src/.hidden_dir
printf 'fake git\n' > src/pkg/.git/HEAD
printf 'obj\n' > src/pkg/.git/objects/x
printf 'pkg\n' > src/pkg/mod.py
printf 'gitdir: /nowhere\n' > src/wt/.git
printf 'real\n' > src/real.txt
ln -s real.txt src/link_to_file
printf 'outside\n' > outside.txt
ln -s ../outside.txt src/link_outside
ln -s does-not-exist src/broken_link
ln -s missing_dir/ src/broken_dir_link
printf 'in dir\n' > src/real_dir/f.txt
ln -s real_dir src/dir_link
ln -s . src/self_loop
: > src/empty
printf 'hidden\n' > src/.hidden
printf 'hidden dir file\n' > src/.hidden_dir/h
python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.bind("src/sock")'
ln -s sock src/link_to_socket
