#!/bin/sh
# The runtime image's whole root filesystem, assembled in the build stage into $1 (the
# Dockerfile's last stage is `FROM scratch` + this tree): the Python interpreter and the
# part of its standard library the migrator can use, the shared libraries they link
# (found with ldd, nothing else), the virtualenv, CA certificates, the time zones, a
# passwd/group naming uid 10001, /tmp, and a POSIX shell with env/id/touch/ls/cat for
# debugging. No package manager, no pip, no compiler, no apt lists or docs.
#
# Works on any Debian-based Python image: Debian's python3 (/usr/bin, /usr/lib/python3.11)
# and the python:3.11-slim layout (/usr/local/bin, /usr/local/lib) alike.
set -eu
root=$1
mkdir -p "$root"

# Merged /usr: keep /bin, /lib, /lib64, /sbin as the symlinks they are in the base.
for d in bin sbin lib lib64; do
    if [ -L "/$d" ]; then cp -P "/$d" "$root/$d"; fi
done

copy() {  # copy a file (following symlinks to its content) to the same path under $root
    src=$1
    real=$(readlink -f "$src")
    mkdir -p "$root$(dirname "$real")"
    [ -e "$root$real" ] || cp -p "$real" "$root$real"
    # the name it was asked for, when that is a symlink, as a symlink to it
    if [ "$(readlink -f "$(dirname "$src")")/$(basename "$src")" != "$real" ]; then
        dir=$(readlink -f "$(dirname "$src")")
        mkdir -p "$root$dir"
        [ -e "$root$dir/$(basename "$src")" ] || ln -s "$real" "$root$dir/$(basename "$src")"
    fi
}

libs() {  # every shared library the given ELF files need, one path a line
    for f in "$@"; do ldd "$f" 2>/dev/null || true; done \
        | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' | sort -u
}

python=$(command -v python3)
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')

# The interpreter, under every name the virtualenv's symlinks use.
for name in "$python" "$(dirname "$python")/python3.11" "$(readlink -f "$python")"; do
    copy "$name"
done
# libpython, when the interpreter is linked against it (python:3.11-slim).
for lib in $(libs "$(readlink -f "$python")"); do copy "$lib"; done

# The standard library, without what a migration can never use: tests, IDLE, Tk, the
# bundled pip wheels, 2to3, the GUI/terminal/database modules below, and their C parts.
mkdir -p "$root$(dirname "$stdlib")"
cp -a "$stdlib" "$root$stdlib"
cd "$root$stdlib"
rm -rf test idlelib tkinter turtledemo turtle.py ensurepip lib2to3 pydoc_data \
       sqlite3 curses dbm distutils site-packages dist-packages config-3.11-* \
       lib-dynload/_sqlite3.* lib-dynload/_dbm.* lib-dynload/_gdbm.* lib-dynload/readline.* \
       lib-dynload/_curses* lib-dynload/_tkinter.* lib-dynload/_test* lib-dynload/xx* \
       lib-dynload/_ctypes_test.* lib-dynload/audioop.* lib-dynload/nis.* lib-dynload/ossaudiodev.*
find . -name __pycache__ -prune -exec rm -rf {} +
cd /

# The virtualenv (its .pyc compiled by the Dockerfile) and the libraries its C extensions
# and the standard library's need (psycopg's binary wheel carries its own libpq and OpenSSL).
mkdir -p "$root/opt"
cp -a /opt/venv "$root/opt/venv"
for lib in $(libs $(find "$root$stdlib/lib-dynload" /opt/venv -name '*.so*' -type f)); do
    case $lib in /opt/venv/*) ;; *) copy "$lib" ;; esac
done

# The dynamic loader under the name every ELF file asks for.
for loader in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
    if [ -e "$loader" ]; then copy "$loader"; fi
done

# A shell and a few tools, for `buildah run`/`kubectl debug` and the image tests.
for tool in /bin/sh /usr/bin/env /usr/bin/id /usr/bin/touch /usr/bin/ls /usr/bin/cat; do
    copy "$tool"
    for lib in $(libs "$(readlink -f "$tool")"); do copy "$lib"; done
done

# CA certificates (Python's ssl and libpq's sslrootcert=system), time zones (psycopg names
# the server's TimeZone with zoneinfo), name resolution.
mkdir -p "$root/etc" "$root/usr/share" "$root/usr/lib"
cp -a /etc/ssl "$root/etc/"
[ ! -e /usr/lib/ssl ] || cp -a /usr/lib/ssl "$root/usr/lib/"
[ ! -d /usr/share/ca-certificates ] || cp -a /usr/share/ca-certificates "$root/usr/share/"
[ ! -d /usr/share/zoneinfo ] || cp -a /usr/share/zoneinfo "$root/usr/share/"
rm -rf "$root/usr/share/zoneinfo/right" "$root/usr/share/zoneinfo/posix"
for f in nsswitch.conf host.conf; do [ ! -e "/etc/$f" ] || cp -p "/etc/$f" "$root/etc/"; done

# The user the image runs as (numeric in the Dockerfile; named here for libpq and `id`).
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nmigrator:x:10001:10001::/nonexistent:/usr/sbin/nologin\n' \
    > "$root/etc/passwd"
printf 'root:x:0:\nmigrator:x:10001:\n' > "$root/etc/group"
mkdir -p "$root/tmp" "$root/app"
chmod 1777 "$root/tmp"
