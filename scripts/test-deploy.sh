#!/usr/bin/env bash
# The image and the pod, for real (CI runs this after the tests; as root):
#
#  1. podman builds the repo's Dockerfile as it is. No image registry is
#     reachable here, so the bases its FROM lines name are made locally and
#     stored under those names: debian:bookworm-slim from a bookworm root fs
#     (debootstrap from the Debian mirror apt uses), rust:1-bookworm from it
#     with gcc and this machine's Rust toolchain.
#  2. The DaemonSet's pod template becomes a Pod (podman 4.3 plays Pods, not
#     DaemonSets) that `podman kube play` runs on a private bpffs, a private
#     run dir and TLS files made here instead of the node's /sys/fs/bpf,
#     /run/dpdbg and the Secret, with kubelet's part done by hand (NODE_NAME
#     from spec.nodeName, $(NODE_NAME) expanded), the --attach patterns
#     replaced by the test's own (dpt*), and the declared ports left out
#     (under hostNetwork they only declare; podman 4.3 would try to publish
#     them). Nothing else changes.
#  3. Against the pod: it loads the datapath on the empty bpffs; liveness and
#     readiness through `podman healthcheck run` and the readiness probe's
#     own command; a veth pair made after it started is attached by the pod,
#     and its pins go when it goes (`datapath status` in the pod); a lab
#     beside it (on the pod's datapath, its interfaces attached by `lab up`):
#     `bpf ct list -o json` in the pod equals the host's after the lab's
#     traffic; flows with the node's name through the pod's unix socket
#     (dpdbg observe in the pod and from the host, Python's grpcio with
#     default options) and on port 4244 with mutual TLS; metrics; a restart
#     (SIGTERM) and a crash (SIGKILL, restarted by the pod's restartPolicy)
#     keep every pin and leave no debris.
#  4. Everything it made is removed on the way out (trap), except the cache.
#
# Cache (DPDBG_CI_CACHE, default /var/cache/dpdbg-ci): the bookworm root fs
# tarball, podman's storage for this test (base images, the image's layers)
# and the Dockerfile's cargo cache mounts. A warm run rebuilds only what
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
t0=$SECONDS
say() { printf 'test-deploy [%4ds] %s\n' $((SECONDS - t0)) "$*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (bpffs, network namespaces, podman)"

# What this test needs beyond scripts/setup.sh.
packages=(podman runc debootstrap python3-yaml openssl iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cache=${DPDBG_CI_CACHE:-/var/cache/dpdbg-ci}
ca=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$cache/tmp"
work=$(mktemp -d /tmp/dpdbg-deploy.XXXXXX)
bpffs=$work/bpffs
run=$work/run
tls=$work/tls
pod=dpdbg-test
ctr=$pod-dpdbg

# podman, set up for this machine: runc (crun refuses this VM's hybrid
# cgroups), ulimits within the VM's hard limits, no systemd; its storage in
# the cache, apart from the host's own images.
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/containers/storage"
runroot = "/run/dpdbg-ci/containers"
EOF
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
# podman build's cache mounts (RUN --mount=type=cache) live under its TMPDIR.
podman() { TMPDIR=$cache/tmp command podman "$@"; }

host_dpdbg() { "$dpdbg" --bpffs "$bpffs" "$@"; }
in_pod() { podman exec "$ctr" dpdbg "$@"; }

cleanup() {
    local rc=$?
    set +e
    [ -f "$work/pod.yaml" ] && podman kube play --down "$work/pod.yaml" >/dev/null 2>&1
    podman pod rm -f "$pod" >/dev/null 2>&1
    podman rm -f dpdbg-ci-rust-base >/dev/null 2>&1
    [ -n "${dpdbg:-}" ] && [ -f "$work/lab.json" ] && DPDBG_LAB_STATE=$work/lab.json host_dpdbg lab down >/dev/null 2>&1
    [ -n "${dpdbg:-}" ] && mountpoint -q "$bpffs" && host_dpdbg datapath unload >/dev/null 2>&1
    mountpoint -q "$bpffs" && umount "$bpffs"
    ip link del "dpt$$a" 2>/dev/null
    # Nothing of it left: no container or pod in its storage, no mount.
    local left
    left=$(podman ps -aq; podman pod ls -q; mount | grep -F "$work")
    if [ -n "$left" ]; then
        say "left behind: $left"
        [ $rc -eq 0 ] && rc=1
    fi
    rm -rf "$work"
    if [ $rc -eq 0 ]; then say "ok: everything it made is gone"; else say "failed (exit $rc); cleaned up"; fi
    exit $rc
}
trap cleanup EXIT
# A run killed before its trap ran left its pod: remove it first.
podman pod rm -f "$pod" >/dev/null 2>&1 || true

# The host's dpdbg (built by the tests), for the lab and the comparisons.
cargo build -q -p dpdbg-cli --bin dpdbg
dpdbg=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/dpdbg
version=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "dpdbg-cli"))')

# --- 1. The bases and the image ---------------------------------------------
mirror=$(python3 - <<'EOF'
import glob, re
# The mirror apt uses for bookworm (deb822 .sources or a one-line .list).
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(f).read().split("\n\n"):
        fields = dict(re.findall(r"^(\S+):\s*(.*)$", stanza, re.M))
        if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
            print(fields["URIs"].split()[0]); raise SystemExit
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        for line in open(f):
            w = line.split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm":
                print(w[1]); raise SystemExit
    except FileNotFoundError:
        pass
print("http://deb.debian.org/debian")
EOF
)
rootfs_tar=$cache/bookworm-minbase.tar
if ! podman image exists docker.io/library/debian:bookworm-slim; then
    if [ ! -s "$rootfs_tar" ]; then
        say "debootstrap bookworm (minbase) from $mirror"
        debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
        # The mirror's Release files may be older than apt's Valid-Until check
        # allows, as apt on the host is told (a snapshot mirror).
        if apt-config dump | grep -qi 'Check-Valid-Until "false"'; then
            echo 'Acquire::Check-Valid-Until "false";' >"$work/rootfs/etc/apt/apt.conf.d/99mirror"
        fi
        rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
        tar -C "$work/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
        rm -rf "$work/rootfs"
    fi
    say "importing debian:bookworm-slim"
    podman import -q --change 'CMD ["bash"]' "$rootfs_tar" docker.io/library/debian:bookworm-slim >/dev/null
fi
# rust:1-bookworm as the official image lays it out (RUSTUP_HOME, CARGO_HOME,
# PATH), with the host's default toolchain (no docs) and a C toolchain.
toolchain=$(rustup show active-toolchain | cut -d' ' -f1)
rustc_version=$(rustc --version)
if [ "$(podman image inspect --format '{{ index .Labels "dpdbg.ci.rustc" }}' docker.io/library/rust:1-bookworm 2>/dev/null)" != "$rustc_version" ]; then
    say "making rust:1-bookworm ($rustc_version)"
    tc=$(rustc --print sysroot)
    podman rm -f dpdbg-ci-rust-base >/dev/null 2>&1 || true
    # (The mirror is plain http: no CA needed here, and the image's own
    # ca-certificates could not replace a mounted bundle.)
    podman run --name dpdbg-ci-rust-base --network host -v "$tc:/mnt/toolchain:ro" \
        docker.io/library/debian:bookworm-slim sh -ec "
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev make pkg-config git ca-certificates >/dev/null
            rm -rf /var/lib/apt/lists/*
            mkdir -p /usr/local/rustup/toolchains/$toolchain /usr/local/cargo/bin
            cp -a /mnt/toolchain/bin /mnt/toolchain/lib /mnt/toolchain/libexec /mnt/toolchain/etc /usr/local/rustup/toolchains/$toolchain/
            for b in /usr/local/rustup/toolchains/$toolchain/bin/*; do ln -s \$b /usr/local/cargo/bin/; done
            /usr/local/cargo/bin/cargo --version" >"$work/rust-base.log" 2>&1 || { tail -20 "$work/rust-base.log"; fail "making rust:1-bookworm"; }
    podman commit -q \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL dpdbg.ci.rustc=\"$rustc_version\"" --change 'CMD ["bash"]' \
        dpdbg-ci-rust-base docker.io/library/rust:1-bookworm >/dev/null
    podman rm -f dpdbg-ci-rust-base >/dev/null
fi

# The image the manifest names (the release's tag), from the Dockerfile as it
# is: podman's own flags give RUN steps the host's CA bundle (crates.io and
# the mirror are reached through a TLS proxy) and the host's network.
image=$(python3 -c 'import sys, yaml; d = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d["kind"] == "DaemonSet"); print(d["spec"]["template"]["spec"]["containers"][0]["image"])' deploy/daemonset.yaml)
[ "${image##*:}" = "$version" ] || fail "the manifest's image $image is not tagged with the release ($version)"
say "podman build -t $image ."
build_start=$SECONDS
build_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
podman build --runtime runc --network host --pull=never -v "$ca:$ca:ro" -t "$image" -f Dockerfile . \
    >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "podman build"; }
say "built $image in $((SECONDS - build_start))s"
# Earlier builds' leftovers (untagged, unused) go; this build's layers stay
# for the next run.
podman image prune -f --filter "until=$build_time" >/dev/null
podman run --rm "$image" --version >/dev/null || fail "the image does not run dpdbg"

# --- 2. A node for the pod: private bpffs, run dir, TLS files, a lab ----------
mkdir -p "$bpffs" "$run" "$tls"
mount -t bpf bpf "$bpffs"
(
    cd "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=dpdbg-test-ca \
        -keyout ca.key -out ca.crt 2>/dev/null
    for who in tls client; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
            -keyout "$who.key" -out "$who.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$who.ext"
        openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile "$who.ext" \
            -out "$who.crt" 2>/dev/null
    done
)
for port in 4244 9962; do
    if ss -ltn | grep -q ":$port "; then fail "port $port is taken on this machine: the pod (host network) serves on it"; fi
done

# Does serve load and attach by itself (serve --load --attach)? A dpdbg
# without them gets the datapath from the lab, loaded before the pod starts.
agent=no
serve_help=$("$dpdbg" serve --help)
if grep -q -- '--attach' <<<"$serve_help"; then agent=yes; fi
export DPDBG_LAB_STATE=$work/lab.json
if [ $agent = no ]; then
    say "serve has no --load/--attach: the lab loads and attaches the datapath from the host"
    host_dpdbg lab up >/dev/null
fi

python3 - "$repo/deploy/daemonset.yaml" "$work/pod.yaml" "$pod" "$bpffs" "$run" "$tls" "$agent" <<'EOF'
import sys, yaml
src, out, name, bpffs, run, tls, agent = sys.argv[1:]
ds = next(d for d in yaml.safe_load_all(open(src)) if d["kind"] == "DaemonSet")
spec = ds["spec"]["template"]["spec"]
# The node's paths -> this test's; the Secret -> the files made here.
for v in spec["volumes"]:
    if v.get("hostPath", {}).get("path") == "/sys/fs/bpf":
        v["hostPath"]["path"] = bpffs
    elif v.get("hostPath", {}).get("path") == "/run/dpdbg":
        v["hostPath"]["path"] = run
    elif "secret" in v:
        v.pop("secret")
        v["hostPath"] = {"path": tls, "type": "Directory"}
for c in spec["containers"]:
    # Under hostNetwork a containerPort only declares the port the process
    # opens on the node; podman 4.3 would publish it (a port mapping, which
    # it refuses with the host's network).
    if spec.get("hostNetwork"):
        c.pop("ports", None)
    # kubelet's part: the downward API's spec.nodeName.
    for e in c.get("env", []):
        if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            e.pop("valueFrom")
            e["value"] = "node-a"
    # ... and its expansion of $(VAR) in the command from the container's env.
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    def expand(w):
        for k, v in env.items():
            w = w.replace(f"$({k})", v)
        return w
    c["command"] = [expand(w) for w in c["command"]]
    # --attach: the interfaces this test makes for the pod (dpt*). The lab's
    # (dpl*) are attached by `lab up`, which refuses an interface something
    # else attached first.
    cmd, out_cmd, i = c["command"], [], 0
    while i < len(cmd):
        if cmd[i] == "--attach":
            i += 1
            while i < len(cmd) and not cmd[i].startswith("-"):
                i += 1
            if agent == "yes" and "dpt*" not in out_cmd:
                out_cmd += ["--attach", "dpt*"]
            continue
        if cmd[i] == "--load" and agent == "no":
            i += 1
            continue
        if cmd[i] == "--node-name" and agent == "no":
            i += 2
            continue
        out_cmd.append(cmd[i])
        i += 1
    c["command"] = out_cmd
pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": name, "labels": ds["spec"]["template"]["metadata"]["labels"]},
    "spec": spec,
}
yaml.safe_dump(pod, open(out, "w"), sort_keys=False)
EOF

# --- 3. The pod ---------------------------------------------------------------
say "podman kube play (the DaemonSet's pod template)"
podman kube play "$work/pod.yaml" >"$work/play.log" 2>&1 || { cat "$work/play.log"; fail "podman kube play"; }
readiness=$(python3 -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]))' "$work/pod.yaml")

# Healthy: liveness through podman's healthcheck (made from livenessProbe),
# readiness through the readiness probe's command, within 30 s.
wait_ready() {
    local t=$SECONDS
    until podman healthcheck run "$ctr" >/dev/null 2>&1 && podman exec "$ctr" $readiness >/dev/null 2>&1; do
        if [ $((SECONDS - t)) -gt 30 ]; then
            podman logs "$ctr" 2>&1 | tail -20
            fail "the pod was not live and ready within 30 s"
        fi
        sleep 0.5
    done
}
wait_ready
say "live (podman healthcheck run) and ready ($readiness)"

in_status() { in_pod datapath status -o json; }
# (python: the status's interfaces, by name: hooks attached, and all listed)
hooks='import json, sys
s = json.load(sys.stdin)
on, every = {}, set()
for i in s["interfaces"]:
    every.add(i["interface"])
    if i["attached"]:
        on.setdefault(i["interface"], []).append(i["hook"])
'
if [ $agent = yes ]; then
    in_status | python3 -c 'import json, sys; s = json.load(sys.stdin); assert s["state"] == "loaded", s["state"]' ||
        fail "the pod did not load the datapath on the empty bpffs"
    say "the pod loaded the datapath (serve --load)"
    # Interfaces made after the pod started: attached from netlink's news,
    # and their pins gone with them.
    a=dpt$$a b=dpt$$b
    ip link add "$a" type veth peer name "$b"
    ip link set "$a" up
    ip link set "$b" up
    # attached NAME...: every one on both hooks; listed NAME...: any one at all.
    attached() { in_status | python3 -c "$hooks"'sys.exit(0 if all(len(on.get(i, [])) == 2 for i in sys.argv[1:]) else 1)' "$@"; }
    listed() { in_status | python3 -c "$hooks"'sys.exit(0 if any(i in every for i in sys.argv[1:]) else 1)' "$@"; }
    t=$SECONDS
    until attached "$a" "$b"; do
        [ $((SECONDS - t)) -lt 10 ] || { ip link del "$a"; fail "the pod did not attach $a and $b within 10 s"; }
        sleep 0.2
    done
    ip link del "$a"
    t=$SECONDS
    while listed "$a" "$b" || find "$bpffs" -name "dpt$$*" | grep -q .; do
        [ $((SECONDS - t)) -lt 10 ] || fail "the pins of $a and $b outlived them by 10 s"
        sleep 0.2
    done
    say "a veth pair made after the pod started was attached by it; its pins went with it"
    host_dpdbg lab up >/dev/null
fi
lab_ifs=$(python3 -c 'import json, sys; print(" ".join(e["host_if"] for e in json.load(open(sys.argv[1]))["endpoints"]))' "$work/lab.json")

status_json=$(in_pod datapath status -o json) || fail "datapath status in the pod"
python3 - "$lab_ifs" "$status_json" <<'EOF' || fail "datapath status in the pod"
import json, sys
ifs, s = sys.argv[1].split(), json.loads(sys.argv[2])
assert s["state"] == "loaded", s["state"]
for i in ifs:
    hooks = sorted(x["hook"] for x in s["interfaces"] if x["interface"] == i and x["attached"])
    assert hooks == ["egress", "ingress"], f"{i}: {hooks} in the pod's datapath status"
EOF
say "datapath status in the pod: loaded, attached to $lab_ifs"

host_dpdbg lab traffic >/dev/null || fail "lab traffic"
same=no
for _ in 1 2 3 4 5; do
    # Ages are in whole seconds: a second may turn between the two reads.
    if [ "$(in_pod bpf ct list -o json)" = "$(host_dpdbg bpf ct list -o json)" ]; then
        same=yes
        break
    fi
    sleep 0.3
done
[ $same = yes ] || fail "bpf ct list -o json in the pod differs from the host's"
entries=$(host_dpdbg bpf ct list -o json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
[ "$entries" -gt 0 ] || fail "no conntrack entries after the lab's traffic"
say "bpf ct list -o json: the pod's equals the host's ($entries entries)"

# Flows: through the pod's socket (in the pod and from the host), and on the
# node's port 4244 with mutual TLS.
in_pod observe --last 5 -o json >"$work/flows-pod.json" || fail "observe in the pod"
[ -s "$work/flows-pod.json" ] || fail "no flows in the pod"
host_dpdbg observe --server "$run/dpdbg.sock" --last 5 -o json >"$work/flows-host.json" || fail "observe on the pod's socket"
cmp -s "$work/flows-pod.json" "$work/flows-host.json" || fail "the pod's socket gives the host other flows"
host_dpdbg observe --server 127.0.0.1:4244 --tls-ca "$tls/ca.crt" --tls-cert "$tls/client.crt" --tls-key "$tls/client.key" \
    --last 5 -o json >"$work/flows-tls.json" || fail "observe on port 4244 (mutual TLS)"
cmp -s "$work/flows-pod.json" "$work/flows-tls.json" || fail "port 4244 gives other flows"
if [ -x /opt/dpdbg-venv/bin/python ]; then
    /opt/dpdbg-venv/bin/python tests/python/observer_client.py --default-options api/proto "unix:$run/dpdbg.sock" flows 5 \
        >"$work/flows-py.json" || fail "grpcio with default options on the pod's socket"
    [ "$(wc -l <"$work/flows-py.json")" = 5 ] || fail "grpcio got $(wc -l <"$work/flows-py.json") flows, not 5"
fi
if [ $agent = yes ]; then
    grep -q '"node-a"' "$work/flows-pod.json" || fail "flows do not name the node (NODE_NAME from spec.nodeName)"
fi
say "flows: in the pod, on its socket from the host (dpdbg and grpcio), on 4244 with mutual TLS"
# Prometheus' exposition, where the pod template serves it (--metrics).
metrics=$(python3 -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["spec"]["containers"][0]["command"]; print(c[c.index("--metrics") + 1] if "--metrics" in c else "")' "$work/pod.yaml")
if [ -n "$metrics" ]; then
    python3 - "http://127.0.0.1:${metrics##*:}/metrics" <<'PY' || fail "no metrics on $metrics"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
assert any(l.startswith(("cilium_", "hubble_", "dpdbg_")) for l in text.splitlines()), text[:500]
PY
    say "metrics on $metrics"
fi

# --- Restarts keep the pins and leave no debris ---------------------------------
snapshot() {
    # Every pin (path and inode: a pin made again is another file), the run
    # dir's entries, the programs' ids, the pod's processes.
    (
        cd "$bpffs" && find . -printf '%p %i\n' | sort
        echo "-- run"
        ls -A "$run"
        echo "-- progs"
        host_dpdbg datapath status -o json | python3 -c 'import json, sys; s = json.load(sys.stdin); print(json.dumps(s.get("programs"), sort_keys=True))'
    )
}
processes() { podman top "$ctr" comm | tail -n +2 | sort | tr '\n' ' '; }
before=$(snapshot)
[ "$(processes)" = "dpdbg " ] || fail "the pod runs more than dpdbg serve: $(processes)"
restarts() { podman inspect --format '{{.RestartCount}}' "$ctr"; }

# A restart as kubelet makes one (a failed liveness probe: SIGTERM, then the
# restartPolicy), then a crash (SIGKILL). The signals come from outside
# podman: `podman restart`, `stop` and `kill` count as the user's stop, after
# which podman's pod exit policy stops the pod's infra container too.
restart_with() {
    local r0 t
    r0=$(restarts)
    kill "-$1" "$(podman inspect --format '{{.State.Pid}}' "$ctr")"
    t=$SECONDS
    until [ "$(restarts)" -gt "$r0" ] && [ "$(podman inspect --format '{{.State.Running}}' "$ctr")" = true ]; do
        [ $((SECONDS - t)) -lt 30 ] || fail "after SIG$1 the container was not restarted (restartPolicy Always)"
        sleep 0.5
    done
    wait_ready
    [ "$(snapshot)" = "$before" ] || { diff <(echo "$before") <(snapshot) || true; fail "SIG$1 and a restart changed the pins or left debris"; }
    [ "$(processes)" = "dpdbg " ] || fail "after the restart: $(processes)"
    in_pod observe --last 1 -o json >/dev/null || fail "observe after the restart"
}
restart_with TERM
say "SIGTERM, restarted by restartPolicy: the same pins, programs and run dir"
restart_with KILL
say "SIGKILL, restarted by restartPolicy: the same pins, programs and run dir"

say "passed in $((SECONDS - t0))s"
