"""Lab engine tooling for ywmessaging.scaling: a Docker engine, a lab network, a host-side
package cache and cached systemd base images of Debian 12 and 13.

Standard library only: it runs with the system python3 before any virtualenv exists.

    labctl.py engine      make sure a Docker engine answers (installs/starts it on Debian as root)
    labctl.py network     create the lab's docker network
    labctl.py cache       make sure the host's apt cache (apt-cacher-ng) serves the lab network
    labctl.py images      build the systemd base images, only when their recipe changed
    labctl.py prepare     all of the above, in that order
    labctl.py status      print what is there
    labctl.py destroy     remove the main lab's containers (--all: every lab container and the
                          network); images and the package cache stay

Every step is idempotent. When something is missing that this tool cannot provide, it stops with
a message that says what is missing and how to fix it, and exits non-zero.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# CAs the controller trusts beyond the distribution's (a TLS-inspecting proxy, a corporate CA).
EXTRA_CA_DIR = "/usr/local/share/ca-certificates"
with open(os.path.join(HERE, "lab.json"), encoding="utf-8") as _fh:
    LAB = json.load(_fh)
# Bump when the way images are built changes in a way lab.json does not show.
IMAGE_RECIPE_VERSION = "4"
DOCKERD_LOG = "/var/log/ywlab-dockerd.log"
CACHE_LOG_DIR = "/var/log/ywlab-acng"


class LabError(Exception):
    """A problem the operator has to fix; the message says what and how."""


def log(msg: str) -> None:
    print(f"[labctl] {msg}", flush=True)


def run(argv: list[str], check: bool = True, capture: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, text=True, capture_output=capture, check=False, **kw)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip() if capture else ""
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{detail}")
    return proc


def is_root() -> bool:
    return os.geteuid() == 0


def systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")


def apt_install(packages: list[str], why: str) -> None:
    missing = [p for p in packages if not dpkg_installed(p)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise LabError(
            f"{why} needs the package(s) {', '.join(missing)} and this machine has no apt-get. "
            f"Install {', '.join(missing)} with your system's package manager and run again."
        )
    if not is_root():
        raise LabError(
            f"{why} needs the package(s) {', '.join(missing)}, which are not installed, and this tool "
            f"is not running as root. Run as root, or install them first: apt-get install {' '.join(missing)}"
        )
    log(f"installing {' '.join(missing)} ({why})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = run(["apt-get", "install", "-y", "-q", *missing], check=False, env=env)
    if proc.returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", *missing], env=env)


def dpkg_installed(package: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    proc = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


# --------------------------------------------------------------------------------------------
# Docker engine
# --------------------------------------------------------------------------------------------


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False)
    return proc.returncode == 0 and proc.stdout.strip() != ""


# Every systemd in a lab host takes inotify instances from the one shared kernel; Debian's
# default of 128 runs out with a dozen hosts and systemd then fails units with "Too many open files".
INOTIFY_INSTANCES = 1024


def ensure_inotify_instances() -> None:
    path = "/proc/sys/fs/inotify/max_user_instances"
    try:
        with open(path, encoding="utf-8") as fh:
            current = int(fh.read().strip())
    except (OSError, ValueError):
        return
    if current >= INOTIFY_INSTANCES:
        return
    if not is_root():
        log(f"warning: {path} is {current}; a dozen lab hosts need {INOTIFY_INSTANCES} (sysctl as root)")
        return
    log(f"raising fs.inotify.max_user_instances from {current} to {INOTIFY_INSTANCES} for the lab's systemd hosts")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(INOTIFY_INSTANCES))


def ensure_engine() -> None:
    ensure_inotify_instances()
    if docker_answers():
        return
    if not is_root():
        raise LabError(
            "No Docker engine answers and this tool is not running as root, so it cannot install or "
            "start one. Either run it as root (it installs Debian's docker.io and starts dockerd), or start "
            "Docker yourself (e.g. `sudo systemctl start docker`) and make sure your user may use it "
            "(member of the `docker` group)."
        )
    if not shutil.which("dockerd"):
        if not shutil.which("apt-get"):
            raise LabError(
                "No Docker engine is installed and this machine has no apt-get to install one. "
                "Install Docker Engine 20.10 or newer for your OS, start it, and run again."
            )
        apt_install(["docker.io"], "the lab's Docker engine")
    if not shutil.which("docker"):
        raise LabError("docker.io is installed but no `docker` client is on PATH; check your PATH.")
    if systemd_is_pid1():
        log("starting docker.service")
        run(["systemctl", "start", "docker"])
    else:
        log(f"starting dockerd (no systemd on this machine; log: {DOCKERD_LOG})")
        with open(DOCKERD_LOG, "ab") as out:
            subprocess.Popen(  # noqa: S603 - fixed argv
                ["dockerd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if docker_answers():
            log("docker engine is up")
            return
        time.sleep(1)
    tail = ""
    if os.path.exists(DOCKERD_LOG):
        with open(DOCKERD_LOG, encoding="utf-8", errors="replace") as fh:
            tail = "".join(fh.readlines()[-15:])
    raise LabError(f"dockerd did not answer within 90 s. Last lines of {DOCKERD_LOG}:\n{tail}")


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def ensure_network() -> None:
    name = LAB["network"]
    proc = run(["docker", "network", "inspect", name, "--format", "{{.Id}} {{json .IPAM.Config}}"], check=False)
    if proc.returncode == 0:
        net_id, config = proc.stdout.strip().split(" ", 1)
        subnets = {c.get("Subnet") for c in (json.loads(config or "[]") or [])}
        if LAB["subnet"] not in subnets:
            raise LabError(
                f"docker network {name} exists with subnet(s) {sorted(subnets)}, not {LAB['subnet']} "
                f"(tests/lab/lab.json). Remove it with `labctl.py destroy --all` and run again."
            )
    else:
        log(f"creating docker network {name} ({LAB['subnet']})")
        run(
            [
                "docker", "network", "create", "--driver", "bridge",
                "--subnet", LAB["subnet"], "--gateway", LAB["gateway"], "--ip-range", LAB["ip_range"],
                "--label", "ywlab=1", name,
            ]
        )  # fmt: skip
        net_id = run(["docker", "network", "inspect", name, "--format", "{{.Id}}"]).stdout.strip()
    remove_stale_bridges(f"br-{net_id[:12]}")


def remove_stale_bridges(ours: str) -> None:
    """A bridge left behind by an earlier Docker engine (its state wiped, its interface not) that
    still carries the lab's gateway address steals the route to the lab subnet: hosts could no
    longer reach the package cache. Only bridges docker named (br-<id>) are touched."""
    proc = run(["ip", "-o", "-4", "addr", "show"], check=False)
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[3].startswith(LAB["gateway"] + "/"):
            continue
        ifname = fields[1]
        if ifname != ours and ifname.startswith("br-"):
            if not is_root():
                raise LabError(f"stale bridge {ifname} holds the lab gateway {LAB['gateway']}: ip link delete {ifname}")
            log(f"removing stale bridge {ifname} (it holds the lab gateway {LAB['gateway']})")
            run(["ip", "link", "delete", ifname])


# --------------------------------------------------------------------------------------------
# Package cache (apt-cacher-ng on the host, reached by lab hosts at the network's gateway)
# --------------------------------------------------------------------------------------------


def cache_answers(address: str) -> bool:
    import urllib.error
    import urllib.request

    url = f"http://{address}:{LAB['apt_cache_port']}/acng-report.html"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - our own cache
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


ACNG_DIR = "/var/lib/ywlab/acng"
ACNG_RUN = "/run/ywlab-acng"


def acng_config() -> str:
    """Our own apt-cacher-ng configuration, separate from the host's: no mirror remapping (the lab
    asks for the very mirror the host uses), its own cache, log and port, bound to loopback and the
    lab network's gateway only."""
    return "\n".join(
        [
            "# written by ywmessaging.scaling tests/lab/labctl.py",
            "CacheDir: /var/cache/ywlab-acng",
            f"LogDir: {CACHE_LOG_DIR}",
            "SupportDir: /usr/lib/apt-cacher-ng",
            f"Port: {LAB['apt_cache_port']}",
            f"BindAddress: 127.0.0.1 {LAB['gateway']}",
            f"PidFile: {ACNG_RUN}/pid",
            "ReportPage: acng-report.html",
            "ExThreshold: 4",
            "",
        ]
    )


def ensure_cache() -> None:
    gateway = LAB["gateway"]
    if cache_answers(gateway) and cache_answers("127.0.0.1"):
        return
    apt_install(["apt-cacher-ng"], "the lab's package cache")
    if not is_root():
        raise LabError("starting the lab's package cache needs root; run this tool as root")
    for path in (ACNG_DIR, ACNG_RUN, "/var/cache/ywlab-acng", CACHE_LOG_DIR):
        os.makedirs(path, exist_ok=True)
        shutil.chown(path, "apt-cacher-ng", "apt-cacher-ng")
    write("/", ACNG_DIR.lstrip("/") + "/acng.conf", acng_config())
    pidfile = f"{ACNG_RUN}/pid"
    if os.path.exists(pidfile):
        try:
            with open(pidfile, encoding="utf-8") as fh:
                os.kill(int(fh.read().strip()), 15)
            time.sleep(1)
        except (ValueError, ProcessLookupError):
            pass
    log(f"starting apt-cacher-ng on 127.0.0.1 and {gateway}, port {LAB['apt_cache_port']}")
    run(["runuser", "-u", "apt-cacher-ng", "--", "/usr/sbin/apt-cacher-ng", "-c", ACNG_DIR, "ForeGround=0"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if cache_answers(gateway):
            log(f"apt cache answers on {gateway}:{LAB['apt_cache_port']}")
            return
        time.sleep(0.5)
    raise LabError(f"apt-cacher-ng does not answer on {gateway}:{LAB['apt_cache_port']}; see {CACHE_LOG_DIR}/")


# --------------------------------------------------------------------------------------------
# Base images
# --------------------------------------------------------------------------------------------


def host_mirrors() -> tuple[str, str]:
    """The Debian mirror and security mirror this host already uses (its apt sources)."""
    mirror = os.environ.get("YWLAB_DEBIAN_MIRROR", "")
    security = os.environ.get("YWLAB_SECURITY_MIRROR", "")
    uris: list[str] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in read_lines(path):
            if line.strip().startswith("URIs:"):
                uris.extend(line.split(":", 1)[1].split())
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        for line in read_lines(path):
            parts = line.split()
            if parts and parts[0] == "deb":
                uris.extend(p for p in parts[1:] if "://" in p)
    debian = [u.rstrip("/") for u in uris if u.startswith("http://") and "debian" in u]
    if not mirror:
        mirror = next((u for u in debian if not u.endswith("-security")), "")
    if not security:
        security = next((u for u in debian if u.endswith("-security")), "")
    if not mirror:
        raise LabError(
            "Cannot tell which Debian mirror to build lab images from: no plain-HTTP Debian mirror in this "
            "host's apt sources. Set YWLAB_DEBIAN_MIRROR (and YWLAB_SECURITY_MIRROR) to http:// mirror URLs."
        )
    return mirror, security


def read_lines(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return fh.readlines()


def extra_cas() -> dict[str, str]:
    """The controller's extra CA certificates, by file name, with their content's digest."""
    out = {}
    for path in sorted(glob.glob(os.path.join(EXTRA_CA_DIR, "*.crt"))):
        with open(path, "rb") as fh:
            out[os.path.basename(path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def image_recipe(release: str) -> dict:
    mirror, security = host_mirrors()
    return {
        "version": IMAGE_RECIPE_VERSION,
        "release": release,
        "packages": LAB["base_packages"],
        "mirror": mirror,
        "security": security,
        "extra_cas": extra_cas(),
        "apt_proxy": f"http://{LAB['gateway']}:{LAB['apt_cache_port']}",
    }


def recipe_digest(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def image_label(image: str) -> str | None:
    proc = run(
        ["docker", "image", "inspect", image, "--format", '{{index .Config.Labels "ywlab.recipe"}}'], check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def via_cache(url: str) -> str:
    """apt-cacher-ng's URL form: http://cache:port/<host>/<path> fetches <url> through the cache."""
    return f"http://127.0.0.1:{LAB['apt_cache_port']}/{url.split('://', 1)[1]}"


def build_image(release: str) -> None:
    recipe = image_recipe(release)
    digest = recipe_digest(recipe)
    image = f"{LAB['image_repo']}:{release}"
    if image_label(image) == digest:
        log(f"image {image} is current (recipe {digest})")
        return
    apt_install(["debootstrap"], "building lab images")
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix=f"ywlab-{release}-", dir="/var/tmp")
    root = os.path.join(workdir, "rootfs")
    try:
        log(f"debootstrap {release} (recipe {digest}) ...")
        run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(recipe['packages'])}",
                release, root, via_cache(recipe["mirror"]),
            ]
        )  # fmt: skip
        customise_rootfs(root, recipe)
        changes = [
            'CMD ["/lib/systemd/systemd"]',
            "ENV container=docker",
            f"LABEL ywlab.recipe={digest}",
            f"LABEL ywlab.release={release}",
        ]
        argv = ["docker", "import"]
        for change in changes:
            argv += ["--change", change]
        argv += ["-", image]
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)  # noqa: S603
        run(argv, stdin=tar.stdout)
        tar.wait()
        if tar.returncode != 0:
            raise LabError(f"tar of {root} failed")
        log(f"built {image} in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def customise_rootfs(root: str, recipe: dict) -> None:
    release = recipe["release"]
    sources = [
        "Types: deb",
        f"URIs: {recipe['mirror']}",
        f"Suites: {release} {release}-updates",
        "Components: main",
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
    ]
    if recipe["security"]:
        sources += [
            "",
            "Types: deb",
            f"URIs: {recipe['security']}",
            f"Suites: {release}-security",
            "Components: main",
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        ]
    write(root, "etc/apt/sources.list.d/debian.sources", "\n".join(sources) + "\n")
    write(root, "etc/apt/sources.list", "")
    write(root, "etc/apt/apt.conf.d/90ywlab", 'Acquire::Languages "none";\nAPT::Install-Recommends "false";\n')
    # Lab hosts are thrown away, never crash-recovered: dpkg need not fsync every file it unpacks, nor
    # unpack documentation nobody reads there (measured: Node.js and npm install in about 3/4 the time).
    write(
        root,
        "etc/dpkg/dpkg.cfg.d/90ywlab",
        "force-unsafe-io\n"
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n",
    )
    write(
        root,
        "etc/apt/apt.conf.d/01ywlab-proxy",
        "// Lab only: every .deb comes from the mirror once per machine, not once per host.\n"
        f'Acquire::http::Proxy "{recipe["apt_proxy"]}";\n'
        "// A fetch through the cache was once left hanging (connection in CLOSE_WAIT): give up and retry.\n"
        'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n',
    )
    # The controller's extra CAs, trusted from the first boot: without them, HTTPS downloads through a
    # TLS-inspecting proxy (npm, pip) fail inside the lab hosts.
    cas = os.path.join(root, "usr/local/share/ca-certificates")
    os.makedirs(cas, exist_ok=True)
    for name in recipe["extra_cas"]:
        shutil.copyfile(os.path.join(EXTRA_CA_DIR, name), os.path.join(cas, name))
    if recipe["extra_cas"]:
        run(["chroot", root, "update-ca-certificates"])
    # Each container gets its own machine id at first boot.
    write(root, "etc/machine-id", "")
    dbus_id = os.path.join(root, "var/lib/dbus/machine-id")
    if os.path.lexists(dbus_id):
        os.remove(dbus_id)
    # Units that have nothing to do in a container and would otherwise fail.
    for unit in ["systemd-remount-fs.service", "getty@tty1.service", "console-getty.service",
                 "systemd-firstboot.service", "apt-daily.timer", "apt-daily-upgrade.timer"]:  # fmt: skip
        link = os.path.join(root, "etc/systemd/system", unit)
        if not os.path.lexists(link):
            os.symlink("/dev/null", link)
    shutil.rmtree(os.path.join(root, "var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(os.path.join(root, "var/cache/apt/archives/partial"), exist_ok=True)
    for lists in glob.glob(os.path.join(root, "var/lib/apt/lists/*_*")):
        os.remove(lists)


def write(root: str, rel: str, content: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(content)


def ensure_images(releases: list[str]) -> None:
    for release in releases:
        build_image(release)


# --------------------------------------------------------------------------------------------
# Status / teardown
# --------------------------------------------------------------------------------------------


def lab_containers(group: str | None = None) -> list[str]:
    label = f"ywlab.group={group}" if group else "ywlab.host"
    proc = run(["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"], check=False)
    return sorted(n for n in proc.stdout.split() if n)


def destroy(everything: bool, group: str = "main") -> None:
    """Remove the hosts of one lab (group: the main lab's by default, or another inventory's
    lab_group); with everything, also Molecule's leftovers and the network. Images and the package
    cache stay: they are what makes the next run fast."""
    if not docker_answers():
        log("no docker engine answers: nothing to remove")
        return
    names = lab_containers(None if everything else group)
    if names:
        log(f"removing containers: {' '.join(names)}")
        run(["docker", "rm", "-f", "-v", *names])
    else:
        log("no lab containers to remove")
    if everything and run(["docker", "network", "inspect", LAB["network"]], check=False).returncode == 0:
        log(f"removing network {LAB['network']}")
        run(["docker", "network", "rm", LAB["network"]])


def status() -> None:
    up = docker_answers()
    print(f"docker engine : {'up' if up else 'DOWN'}")
    if not up:
        return
    network = run(["docker", "network", "inspect", LAB["network"]], check=False).returncode == 0
    cache = "answers" if cache_answers(LAB["gateway"]) else "down"
    print(f"network       : {LAB['network']} {'present' if network else 'absent'}")
    print(f"apt cache     : {cache} ({LAB['gateway']}:{LAB['apt_cache_port']})")
    for release in LAB["releases"]:
        image = f"{LAB['image_repo']}:{release}"
        label = image_label(image)
        print(f"image         : {image} {'recipe ' + label if label else 'absent'}")
    print(f"containers    : {' '.join(lab_containers()) or '-'}")


_LOCK = None


def hold_lab_lock() -> None:
    """Several Molecule scenarios may prepare the lab at the same time: one labctl at a time, the
    others then find everything in place. Held until the process exits."""
    global _LOCK  # noqa: PLW0603
    path = "/run/lock/ywlab-labctl.lock" if os.path.isdir("/run/lock") else "/var/lock/ywlab-labctl.lock"
    try:
        _LOCK = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    except OSError:
        return  # not ours to lock (an unprivileged user): the steps below say what is missing
    fcntl.flock(_LOCK, fcntl.LOCK_EX)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["engine", "network", "cache", "images", "prepare", "status", "destroy"])
    parser.add_argument("--release", action="append", choices=LAB["releases"], help="only these image releases")
    parser.add_argument("--all", action="store_true", help="destroy: also Molecule's hosts and the lab network")
    parser.add_argument("--group", default="main", help="destroy: the hosts of this lab (an inventory's lab_group)")
    args = parser.parse_args(argv)
    # Each step needs the ones before it.
    ladder = ["engine", "network", "cache", "images"]
    steps = {
        "engine": ensure_engine,
        "network": ensure_network,
        "cache": ensure_cache,
        "images": lambda: ensure_images(args.release or LAB["releases"]),
    }
    try:
        if args.command == "status":
            status()
            return 0
        hold_lab_lock()
        if args.command == "destroy":
            destroy(args.all, args.group)
        else:
            last = ladder.index("images" if args.command == "prepare" else args.command)
            for step in ladder[: last + 1]:
                steps[step]()
    except LabError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
