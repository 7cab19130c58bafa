"""The sandbox without bubblewrap: run inside `unshare --user --map-root-user
--mount --net`, make every mount read-only but the writable dirs, bring the
new network namespace's loopback up, then exec the app (same process, so
its group is the one the node signals).

    python _unshare_shim.py [--probe] --writable DIR ... -- ARGV...

Standard library only; it runs before the app's Python starts.
"""

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
# Flags a user namespace may not clear on a mount it inherited: a remount
# must repeat them.
_KEPT = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _mount(source: str | None, target: str, flags: int) -> None:
    if _libc.mount(
        None if source is None else source.encode(), target.encode(), None,
        ctypes.c_ulong(flags), None,
    ) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def _mounts() -> list[tuple[str, int]]:
    """(mount point, flags to keep) of every mount, parents first."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            options = fields[5].split(",")
            kept = 0
            for option in options:
                kept |= _KEPT.get(option, 0)
            found.append((_unescape(fields[4]), kept))
    return sorted(found, key=lambda m: m[0].count("/"))


def _inside(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def lock_down(writable: list[str]) -> None:
    writable = [os.path.realpath(d) for d in writable]
    for path in writable:
        _mount(path, path, MS_BIND | MS_REC)
    seen = set()
    for point, kept in _mounts():
        if point in seen or _inside(point, writable):
            continue
        seen.add(point)
        try:
            _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError:
            # A mount this namespace cannot touch (e.g. one under /proc that
            # is already locked) is acceptable; the root and the dirs apps
            # write to are not.
            if point in ("/", "/tmp", "/home", "/root", "/var", "/work"):
                raise


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    writable = [options[i + 1] for i, word in enumerate(options) if word == "--writable"]
    lock_down(writable)
    loopback_up()
    if "--probe" in options:
        return
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
