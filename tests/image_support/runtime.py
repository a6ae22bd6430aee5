"""The node's own container runtime: podman with the CNI backend, as kubelet's runtime on a node.

It runs in the lab node's network namespace (``nsenter --net=/run/netns/<node>``) and in a private
mount namespace held by one ``sleep`` process started here, in which

- the project's source tree, this Python installation (sys.prefix, sys.base_prefix) and the
  machine's /usr/lib/cni are hidden under empty tmpfs mounts, so the only CNI plugins there are
  what the init container copied into the node's bin dir, and `terway` can only be the static shim;
- the node's ``/var/run/eni`` (``<host root>/var/run/eni``, the daemon container's hostPath) is
  bind-mounted at /var/run/eni, where the shim finds the daemon's socket by default.

Its CNI config dir is the node's conf dir the init container wrote (``<host root>/etc/cni/net.d``),
its plugin dir the node's bin dir (``<host root>/opt/cni/bin``). Containers run from a busybox-static
root filesystem (``--rootfs``): no image registry is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tests.image_support.podman import Podman

BUSYBOX = Path("/bin/busybox")
REPO = Path(__file__).resolve().parents[2]


def busybox_rootfs(target: Path) -> Path:
    """A minimal root filesystem: busybox-static and its applet links."""
    for sub in ("bin", "proc", "sys", "dev", "etc", "tmp", "run"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, target / "bin" / "busybox")
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in listing:
        link = target / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (target / "etc" / "group").write_text("root:x:0:\n")
    return target


def hidden_paths(extra: Iterable[Path] = ()) -> list[Path]:
    """What the node's runtime must not see: this Python, the source tree, the machine's plugins."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), REPO, Path("/usr/lib/cni"), *extra}
    return sorted(p for p in paths if p.is_dir())


MOUNT_POINT = Path("/run/eni")   # where the node's /var/run/eni is bound in the runtime's namespace


def hold_mount_point() -> int:
    """MOUNT_POINT, created if absent, held by a shared lock (a descriptor) while a runtime binds it, so
    the last runtime to close removes it and a concurrent one never loses it under its bind mount."""
    for _ in range(50):
        MOUNT_POINT.mkdir(exist_ok=True)
        fd = os.open(MOUNT_POINT, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(MOUNT_POINT).st_ino == os.fstat(fd).st_ino:   # not removed by a closing runtime meanwhile
                return fd
        os.close(fd)
    raise RuntimeError(f"cannot hold {MOUNT_POINT}: it keeps being removed")


def release_mount_point(fd: int) -> None:
    """Drop our hold; remove MOUNT_POINT when no runtime holds it and it is empty (it was only a mount point)."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(OSError):
            MOUNT_POINT.rmdir()
    except BlockingIOError:
        pass   # another runtime holds it
    finally:
        os.close(fd)


class NodeRuntime:
    """podman on the node (see the module doc); `close()` removes its containers and ends the holder."""

    def __init__(self, work: Path, node_ns: str, host_root: Path) -> None:
        self.work, self.node_ns, self.host_root = work, node_ns, host_root
        self.conf_dir = host_root / "etc/cni/net.d"
        self.bin_dir = host_root / "opt/cni/bin"
        self.eni_dir = host_root / "var/run/eni"
        self.mount_point = hold_mount_point()
        hidden = hidden_paths()
        script = "set -e\n" + "".join(f"mount -t tmpfs -o size=1m,mode=0755 twhide {shlex.quote(str(p))}\n"
                                      for p in hidden)
        script += f"mount --bind {shlex.quote(str(self.eni_dir))} {MOUNT_POINT}\n"
        script += "echo ready\nexec sleep 100000\n"
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            release_mount_point(self.mount_point)
            self.holder.kill()
            _, err = self.holder.communicate(timeout=10)
            raise RuntimeError(f"cannot set up the runtime's mount namespace: {err}")
        self.hidden = hidden
        self.runroot = Path(tempfile.mkdtemp(prefix="twrt-", dir="/run"))  # podman: at most 50 characters
        self.podman = Podman(
            root=work / "root", runroot=self.runroot, conf_dir=work / "conf", storage_driver="vfs",
            network_config_dir=self.conf_dir, cni_plugin_dirs=[self.bin_dir],
            prefix=["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", f"--net=/run/netns/{node_ns}"],
        )

    def sh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A shell command in the runtime's namespaces (to check what the runtime sees)."""
        return subprocess.run([*self.podman.prefix, "sh", "-c", command], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.podman.rm_all()
        if self.holder.poll() is None:
            os.kill(self.holder.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self.holder.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.holder.poll() is None:
                os.kill(self.holder.pid, signal.SIGKILL)
        self.holder.communicate(timeout=10)
        release_mount_point(self.mount_point)
        shutil.rmtree(self.runroot, ignore_errors=True)
