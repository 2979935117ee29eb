#!/usr/bin/env bash
# cluster.sh: a real single-node Kubernetes on this machine, with no registry
# and no systemd, for trying the operator and for `make e2e-cluster`.
#
#   hack/cluster.sh up [IMAGE.tar ...]   start it, import docker-archive images; prints the KUBECONFIG line
#   hack/cluster.sh load IMAGE.tar ...   import more images into its containerd
#   hack/cluster.sh kubectl ARGS...      kubectl (the cluster's version) against it
#   hack/cluster.sh down                 stop everything it started; remove its state, netns and routes
#   hack/cluster.sh check                say whether this machine can run it (exit 1 and why if not)
#
# What runs: etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet and kube-proxy (the multi-call binary from
# hack/setup-kube.sh, built once and cached), containerd + runc + the CNI bridge
# plugin (Debian), a sandbox ("pause") image built from hack/pause. Everything
# runs as root inside
#   - its own network namespace ($CLUSTER_NAME; node IP 10.98.0.2 on a veth to
#     the host's 10.98.0.1, with host routes to the pod and service ranges, so
#     the host reaches the API server, pods and Service IPs), and
#   - a private mount namespace (the kubelet's and containerd's mounts never
#     show on the host; the few kernel settings the kubelet would retune for
#     the whole machine are shadowed there).
# Nothing listens on the host's own addresses. `down` kills only the
# processes it started (pid files, and what runs in its mount namespace).
#
# Environment (defaults): CLUSTER_NAME (vs-kind), CLUSTER_STATE
# (~/.local/state/visionserve/cluster-$CLUSTER_NAME), CLUSTER_NET (10.98.0: the
# /30 between host and node), POD_CIDR (10.244.0.0/24), SERVICE_CIDR
# (10.96.0.0/16), KUBE (the kube binary; default: hack/setup-kube.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

NAME=${CLUSTER_NAME:-vs-kind}
STATE=${CLUSTER_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/visionserve/cluster-$NAME}
NET=${CLUSTER_NET:-10.98.0}
HOST_IP=$NET.1
NODE_IP=$NET.2
POD_CIDR=${POD_CIDR:-10.244.0.0/24}
SVC_CIDR=${SERVICE_CIDR:-10.96.0.0/16}
SVC_IP=${SVC_CIDR%.*/*}.1 # the API server's Service IP: first address of the range
NODE=node1
RUN=/run/visionserve-$NAME
# Debian's etcd 3.4 has no --unsafe-no-fsync: keep its data in memory
ETCD_DATA=/dev/shm/visionserve-$NAME-etcd
VETH=${NAME:0:10}
export KUBECONFIG=$STATE/admin.kubeconfig

t0=$SECONDS
log() { printf 'cluster [%4ds]: %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- check: can this machine run it? ----
missing() {
	local why=()
	[[ $(id -u) == 0 ]] || why+=("not root (the node runs as root in its own namespaces)")
	[[ $(uname -s) == Linux ]] || why+=("not Linux")
	command -v ip >/dev/null || why+=("no ip (iproute2)")
	command -v unshare >/dev/null && command -v nsenter >/dev/null || why+=("no unshare/nsenter (util-linux)")
	grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null || why+=("no overlay filesystem")
	[[ -d /sys/fs/cgroup ]] || why+=("no cgroup filesystem")
	if [[ $(id -u) == 0 ]] && ! ip netns add "$NAME-probe" 2>/dev/null; then
		why+=("cannot create network namespaces")
	else
		ip netns del "$NAME-probe" 2>/dev/null || true
	fi
	((${#why[@]} == 0)) || printf '%s\n' "${why[@]}"
}

# Debian packages the node needs; installed when missing.
deps() {
	local need=() p
	for p in containerd:/usr/bin/containerd runc:/usr/sbin/runc containernetworking-plugins:/usr/lib/cni/bridge \
		conntrack:/usr/sbin/conntrack iptables:/usr/sbin/iptables etcd-server:/usr/bin/etcd buildah:/usr/bin/buildah; do
		[[ -x ${p#*:} ]] || need+=("${p%%:*}")
	done
	if ((${#need[@]})); then
		log "installing ${need[*]} (Debian)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

# pause_image: the sandbox image as a docker-archive, cached by its source.
pause_image() {
	local key tar c
	key=$( (cat hack/pause/main.go; go env GOVERSION) | sha256sum | cut -c1-12)
	tar="${XDG_CACHE_HOME:-$HOME/.cache}/visionserve/cluster/pause-$key.tar"
	if [[ ! -s $tar ]]; then
		mkdir -p "$(dirname "$tar")"
		local d; d=$(mktemp -d)
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$d/pause" ./hack/pause
		export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/hack/containers.conf}
		c=$(buildah from scratch)
		buildah copy --quiet --chmod 0755 "$c" "$d/pause" /pause >/dev/null
		buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
		buildah commit --quiet --rm "$c" localhost/visionserve-pause:3.10 >/dev/null
		buildah push --quiet localhost/visionserve-pause:3.10 "docker-archive:$tar.tmp:localhost/visionserve-pause:3.10" >/dev/null
		buildah rmi localhost/visionserve-pause:3.10 >/dev/null 2>&1 || true
		mv -f "$tar.tmp" "$tar"
		rm -rf "$d"
	fi
	printf '%s\n' "$tar"
}

anchor_pid() { [[ -s $STATE/anchor.pid ]] && kill -0 "$(cat "$STATE/anchor.pid")" 2>/dev/null && cat "$STATE/anchor.pid"; }
inns() { nsenter -t "$ANCHOR" -m -n -- "$@"; }
ctr_() { inns ctr --address "$RUN/containerd.sock" -n k8s.io "$@"; }

load() {
	local tar ts
	for tar in "$@"; do
		ts=$SECONDS
		ctr_ images import "$tar" >/dev/null
		log "imported $(basename "$tar") in $((SECONDS - ts))s"
	done
}

# start NAME CMD...: a daemon in the namespaces, log to logs/NAME.log, pid to pids/NAME.
start() {
	local name=$1; shift
	rm -f "$STATE/pids/$name"
	setsid nsenter -t "$ANCHOR" -m -n -- sh -c 'echo $$ >"$0"; exec "$@"' "$STATE/pids/$name" "$@" \
		>"$STATE/logs/$name.log" 2>&1 </dev/null &
}
wait_for() { # WHAT SECONDS CMD...
	local what=$1 to=$2 i; shift 2
	for ((i = 0; i < to * 2; i++)); do
		"$@" >/dev/null 2>&1 && { log "$what ok"; return 0; }
		sleep 0.5
	done
	die "timed out after ${to}s waiting for $what (logs: $STATE/logs)"
}

pki() {
	local P=$STATE/pki e name user group tok
	[[ -s $P/apiserver.crt ]] && return
	mkdir -p "$P"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$NAME-ca" -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$P/apiserver.key" -out "$P/apiserver.csr" 2>/dev/null
	printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost\n' \
		"$NODE_IP" "$SVC_IP" >"$P/san.ext"
	openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 30 \
		-extfile "$P/san.ext" -out "$P/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
	openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
	: >"$P/tokens.csv"
	chmod 0600 "$P"/*.key "$P/tokens.csv"
	# one static bearer token per component: kubeconfig-name|user|group
	for e in "admin|admin|system:masters" "kubelet|system:node:$NODE|system:nodes" \
		"kube-controller-manager|system:kube-controller-manager|" "kube-scheduler|system:kube-scheduler|" \
		"kube-proxy|system:kube-proxy|"; do
		IFS='|' read -r name user group <<<"$e"
		tok=$(openssl rand -hex 16)
		echo "$tok,$user,$user${group:+,\"$group\"}" >>"$P/tokens.csv"
		cat >"$STATE/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $NAME, cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$P/ca.crt"}}]
users: [{name: $name, user: {token: "$tok"}}]
contexts: [{name: $NAME, context: {cluster: $NAME, user: $name}}]
current-context: $NAME
EOF
		chmod 0600 "$STATE/$name.kubeconfig"
	done
}

up() {
	local why
	why=$(missing)
	[[ -z $why ]] || die "this machine cannot run the cluster: $why"
	[[ -z $(anchor_pid) ]] || die "cluster $NAME is already running (hack/cluster.sh down first)"
	# what a crashed run left (its netns, routes, state): clear it first
	if ip netns list | grep -qw "$NAME" || [[ -d $STATE ]]; then down; fi
	deps
	local kube=${KUBE:-$(hack/setup-kube.sh)}
	local pause; pause=$(pause_image)
	rm -rf "$STATE"
	mkdir -p "$STATE"/{bin,pod-logs,logs,pids,kubelet,containerd,cni/net.d,cni/ipam,fake} "$RUN"
	for c in apiserver controller-manager scheduler kubelet proxy; do ln -sfn "$kube" "$STATE/bin/kube-$c"; done
	ln -sfn "$kube" "$STATE/bin/kubectl"
	K=$STATE/bin

	# ---- network namespace + veth to the host ----
	ip netns add "$NAME"
	ip link add "$VETH-h" type veth peer name "$VETH-n"
	ip link set "$VETH-n" netns "$NAME"
	ip addr add "$HOST_IP/30" dev "$VETH-h"
	ip link set "$VETH-h" up
	ip -n "$NAME" addr add "$NODE_IP/30" dev "$VETH-n"
	ip -n "$NAME" link set "$VETH-n" up
	ip -n "$NAME" link set lo up
	ip -n "$NAME" route add default via "$HOST_IP"
	ip route add "$POD_CIDR" via "$NODE_IP"
	ip route add "$SVC_CIDR" via "$NODE_IP"
	modprobe br_netfilter 2>/dev/null || true
	ip netns exec "$NAME" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
	ip netns exec "$NAME" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

	# ---- anchor: owns the private mount namespace, inside the netns ----
	setsid nsenter --net="/run/netns/$NAME" -- unshare --mount --propagation shared -- \
		sh -c 'echo $$ >"$1"; exec sleep infinity' sh "$STATE/anchor.pid" </dev/null >/dev/null 2>&1 &
	for ((i = 0; i < 50; i++)); do [[ -s $STATE/anchor.pid ]] && break; sleep 0.1; done
	ANCHOR=$(cat "$STATE/anchor.pid")
	# ip netns made /run/netns a shared mount: keep the pods' netns mounts out of the host's
	inns mount --make-rprivate /run/netns
	# the kubelet "fixes" these machine-wide settings unless they read as it
	# wants: shadow them in this mount namespace only
	local kv k v f
	for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
		k=${kv%=*}; v=${kv#*=}; f=$STATE/fake/${k//\//_}
		echo "$v" >"$f"
		inns mount --bind "$f" "/proc/sys/$k"
	done
	# containerd 1.6's shims put their sockets in /run/containerd/s whatever
	# the config says, and a killed shim leaves its socket behind: a tmpfs
	# there, in this mount namespace only, keeps them off the host
	if [[ ! -d /run/containerd ]]; then
		mkdir -m 0711 /run/containerd
		: >"$STATE/made-run-containerd"
	fi
	inns mount -t tmpfs -o mode=0711 tmpfs /run/containerd
	pki
	local P=$STATE/pki

	# ---- etcd, containerd ----
	rm -rf "$ETCD_DATA"
	start etcd /usr/bin/etcd --name "$NAME" --data-dir "$ETCD_DATA" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$NAME=http://127.0.0.1:2380" --quota-backend-bytes 1073741824
	cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/state"
oom_score = 0
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/visionserve-pause:3.10"
  # never ask for an oom_score_adj below containerd's own: without
  # CAP_SYS_RESOURCE every sandbox would fail to start
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
	cat >"$STATE/cni/net.d/10-$NAME.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "$NAME", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
	start containerd /usr/bin/containerd --config "$STATE/containerd/config.toml"
	wait_for etcd 60 inns curl -fsS http://127.0.0.1:2379/health

	# ---- control plane ----
	start apiserver "$K/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
		--advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
		--tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" --client-ca-file "$P/ca.crt" \
		--token-auth-file "$P/tokens.csv" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
		--service-cluster-ip-range "$SVC_CIDR" --allow-privileged=true --profiling=false \
		--kubelet-preferred-address-types InternalIP
	wait_for containerd 60 inns ctr --address "$RUN/containerd.sock" version
	load "$pause" "$@"
	wait_for kube-apiserver 180 "$K/kubectl" get --raw /readyz
	start controller-manager "$K/kube-controller-manager" --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
		--leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
		--cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
		--service-cluster-ip-range "$SVC_CIDR" --bind-address 127.0.0.1
	start scheduler "$K/kube-scheduler" --kubeconfig "$STATE/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
		--leader-elect=false --bind-address 127.0.0.1

	# ---- node: kubelet, kube-proxy ----
	cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
failSwapOn: false
readOnlyPort: 0
podCIDR: $POD_CIDR
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: 200Mi, nodefs.available: "3%", imagefs.available: "3%", nodefs.inodesFree: "3%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
maxPods: 60
oomScoreAdj: 0
podLogsDir: $STATE/pod-logs
EOF
	start kubelet "$K/kube-kubelet" --config "$STATE/kubelet/config.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
		--root-dir "$STATE/kubelet" --hostname-override "$NODE" --node-ip "$NODE_IP"
	cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are machine-wide (read-only outside the first netns): leave them
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	start proxy "$K/kube-proxy" --config "$STATE/kube-proxy.yaml"
	wait_for "node $NODE registered" 180 "$K/kubectl" get node "$NODE"
	"$K/kubectl" wait --for=condition=Ready "node/$NODE" --timeout=180s >/dev/null
	log "node $NODE Ready"
	wait_for "default service account" 120 "$K/kubectl" -n default get serviceaccount default
	log "cluster $NAME up"
	echo "export KUBECONFIG=$KUBECONFIG PATH=$STATE/bin:\$PATH"
}

descendants() { # PID... -> every descendant pid
	local p c
	for p in "$@"; do
		for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
			echo "$c"
			descendants "$c"
		done
	done
}

down() {
	local anchor mnt p d f ours shims=() i alive
	# best effort from here on: every step runs even if an earlier one finds
	# nothing to do
	set +e
	if anchor=$(anchor_pid); then
		mnt=$(readlink /proc/"$anchor"/ns/mnt 2>/dev/null || true)
		# 1. the control loops first, so nothing restarts what is stopped next
		for d in kubelet proxy scheduler controller-manager; do
			[[ -s $STATE/pids/$d ]] && kill "$(cat "$STATE/pids/$d")" 2>/dev/null
		done
		sleep 1
		# 2. containerd's shims and their containers: the processes in this
		#    cluster's mount namespace that are not its daemons, and all their
		#    descendants (containers have mount namespaces of their own)
		if [[ -n $mnt ]]; then
			ours=" $anchor $(cat "$STATE"/pids/* 2>/dev/null | tr '\n' ' ') "
			for p in /proc/[0-9]*; do
				p=${p#/proc/}
				[[ $(readlink /proc/"$p"/ns/mnt 2>/dev/null) == "$mnt" ]] || continue
				[[ $ours == *" $p "* ]] && continue
				shims+=("$p")
			done
			if ((${#shims[@]})); then
				# shellcheck disable=SC2046
				kill -9 $(descendants "${shims[@]}") "${shims[@]}" 2>/dev/null
			fi
		fi
		# 3. the rest by pid file, then the anchor: its mount namespace and
		#    every mount in it go with it
		for d in containerd apiserver etcd; do
			[[ -s $STATE/pids/$d ]] && kill "$(cat "$STATE/pids/$d")" 2>/dev/null
		done
		for ((i = 0; i < 20; i++)); do
			alive=0
			for f in "$STATE"/pids/*; do kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
			((alive)) || break
			sleep 0.5
		done
		for f in "$STATE"/pids/*; do kill -9 "$(cat "$f")" 2>/dev/null; done
		kill "$anchor" 2>/dev/null
		rm -f "$STATE"/pids/* "$STATE/anchor.pid"
	fi
	# without its state (a crashed run): whatever still runs in its netns is its own
	if ip netns list 2>/dev/null | grep -qw "$NAME"; then
		p=$(ip netns pids "$NAME" 2>/dev/null)
		[[ -z $p ]] || kill -9 $p 2>/dev/null
	fi
	# 4. the cgroups the kubelet and runc made
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/kubepods; do
		[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	# 5. network: the netns (its veth peer goes with it), the host routes
	ip route del "$POD_CIDR" via "$NODE_IP" 2>/dev/null
	ip route del "$SVC_CIDR" via "$NODE_IP" 2>/dev/null
	ip netns del "$NAME" 2>/dev/null
	ip link del "$VETH-h" 2>/dev/null
	for f in /run/netns/cni-*; do
		[[ -e $f ]] && ! mountpoint -q "$f" && rm -f "$f"
	done
	rm -rf "$RUN" "$ETCD_DATA"
	# the mount point up made for the shims' sockets, if it did
	[[ -e $STATE/made-run-containerd ]] && rmdir /run/containerd 2>/dev/null
	# 6. the state, except its logs (kept beside it for a post-mortem)
	if [[ -d $STATE ]]; then
		rm -rf "$STATE.logs"
		[[ -d $STATE/logs ]] && cp -a "$STATE/logs" "$STATE.logs"
		rm -rf "$STATE"
	fi
	log "cluster $NAME down (logs: $STATE.logs)"
	set -e
	return 0
}

cmd=${1:-}
shift || true
case $cmd in
up) up "$@" ;;
down) down ;;
load)
	ANCHOR=$(anchor_pid) || die "cluster $NAME is not running"
	load "$@"
	;;
kubectl) exec "$STATE/bin/kubectl" "$@" ;;
check)
	why=$(missing)
	if [[ -n $why ]]; then
		printf '%s\n' "$why"
		exit 1
	fi
	echo "ok"
	;;
*)
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
