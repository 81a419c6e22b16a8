package localcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nodeNet is the addressing of one real node. The node lives in network and
// mount namespaces of its own, held by one process (the holder), joined to
// the host by a veth pair; pods hang off a bridge inside it. Every address is
// private to this machine and nothing routes further: the node namespace and
// the pods have routes only to each other and to the host's end of the veth.
//
//	host netns                    node netns (holder)             pod netns
//	hostIP (veth) ──────────────── nodeIP (veth)
//	  kube-apiserver, etcd          containerd, kubelet, kube-proxy,
//	  routes podCIDR, serviceCIDR   kube-network-policies
//	  via nodeIP                    cni0 = podGateway ───────────── pod IPs
type nodeNet struct {
	id          string // random, names the veth and the cgroup root
	index       int    // the /24 block of every range below
	hostIP      netip.Addr
	nodeIP      netip.Addr
	podCIDR     netip.Prefix
	podGateway  netip.Addr
	serviceCIDR netip.Prefix
	hostVeth    string
	nodeVeth    string
}

// kubernetesServiceIP and dnsServiceIP are the first and tenth Service IPs.
func (n *nodeNet) kubernetesServiceIP() netip.Addr { return nth(n.serviceCIDR, 1) }
func (n *nodeNet) dnsServiceIP() netip.Addr        { return nth(n.serviceCIDR, 10) }

func nth(p netip.Prefix, i int) netip.Addr {
	a := p.Addr().As4()
	a[3] += byte(i)
	return netip.AddrFrom4(a)
}

// newNodeID is six random hex digits: it names the node's veth pair, its
// cgroup root and the cluster's directory.
func newNodeID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newNodeNet(id string, index int) *nodeNet {
	i := byte(index)
	return &nodeNet{
		id:          id,
		index:       index,
		hostIP:      netip.AddrFrom4([4]byte{100, 100, i, 1}),
		nodeIP:      netip.AddrFrom4([4]byte{100, 100, i, 2}),
		podCIDR:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, i, 0}), 24),
		podGateway:  netip.AddrFrom4([4]byte{10, 244, i, 1}),
		serviceCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 96, i, 0}), 24),
		hostVeth:    "lc" + id + "h",
		nodeVeth:    "lc" + id + "n",
	}
}

// lockNetworks serialises choosing a block and creating its veth among
// clusters starting at the same time on this machine. It locks the temporary
// directory itself, so no lock file is left behind.
func lockNetworks() (unlock func(), err error) { return Lock(os.TempDir()) }

// Lock holds an exclusive flock on path (a directory, or a file it creates
// when missing) until unlock runs: runs on one machine take turns with it.
func Lock(path string) (unlock func(), err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// freeBlock returns a block index whose three ranges no address or route of
// the host overlaps.
func freeBlock(ctx context.Context) (int, error) {
	var used []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := exec.CommandContext(ctx, "ip", args...).Output()
		if err != nil {
			return 0, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		for _, f := range strings.Fields(string(out)) {
			if p, err := netip.ParsePrefix(f); err == nil {
				used = append(used, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	for k := range 250 {
		i := 1 + (int(b[0])+k)%250
		n := newNodeNet("", i)
		free := true
		for _, p := range []netip.Prefix{netip.PrefixFrom(n.hostIP, 24).Masked(), n.podCIDR, n.serviceCIDR} {
			for _, u := range used {
				if u.Bits() > 0 && u.Overlaps(p) {
					free = false
				}
			}
		}
		if free {
			return i, nil
		}
	}
	return 0, fmt.Errorf("localcluster: no free address block in 100.100.0.0/16, 10.244.0.0/16 and 10.96.0.0/16")
}

// holder keeps the node's network and mount namespaces alive: `unshare
// --net --mount --propagation private sleep infinity`. Every node process
// joins both with nsenter, so the mounts they make (volumes, overlay root
// filesystems, the directories bound over /run, /var/lib and /var/log) never
// reach the host, and all of it disappears with the last process.
type holder struct {
	proc *process
}

func (h *holder) pid() int { return h.proc.pid() }

// command returns argv that runs argv in the node's namespaces.
func (h *holder) command(argv ...string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(h.pid()), "--mount", "--net", "--"}, argv...)
}

// run runs a short command in the node's namespaces, bounded by ctx.
func (h *holder) run(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := h.command(argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// hostRun runs a short command on the host, bounded.
func hostRun(ctx context.Context, argv ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setUpNodeNet chooses a free address block and sets up the node's network
// in the holder's namespace, holding a machine-wide lock until the veth
// (which reserves the block) exists.
func setUpNodeNet(ctx context.Context, id string, h *holder) (*nodeNet, error) {
	unlock, err := lockNetworks()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := freeBlock(ctx)
	if err != nil {
		return nil, err
	}
	n := newNodeNet(id, idx)
	return n, n.setUp(ctx, h)
}

// setUp creates the veth pair into the holder's namespace, addresses
// both ends, routes the pod and Service ranges from the host to the node, and
// turns on forwarding inside the node only (the bridge forwards pod traffic;
// the host never forwards).
func (n *nodeNet) setUp(ctx context.Context, h *holder) error {
	steps := [][]string{
		{"ip", "link", "add", n.hostVeth, "type", "veth", "peer", "name", n.nodeVeth, "netns", strconv.Itoa(h.pid())},
		{"ip", "addr", "add", n.hostIP.String() + "/30", "dev", n.hostVeth},
		{"ip", "link", "set", n.hostVeth, "up"},
	}
	for _, s := range steps {
		if err := hostRun(ctx, s...); err != nil {
			return err
		}
	}
	for _, s := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", n.nodeIP.String() + "/30", "dev", n.nodeVeth},
		{"ip", "link", "set", n.nodeVeth, "up"},
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	} {
		if _, err := h.run(ctx, s...); err != nil {
			return err
		}
	}
	for _, p := range []netip.Prefix{n.podCIDR, n.serviceCIDR} {
		if err := hostRun(ctx, "ip", "route", "add", p.String(), "via", n.nodeIP.String(), "dev", n.hostVeth); err != nil {
			return err
		}
	}
	return nil
}

// tearDown deletes the host's end of the veth (the node's end and the host
// routes through it go with it); the namespace itself ends with its last
// process.
func (n *nodeNet) tearDown(ctx context.Context) error {
	if _, err := os.Stat("/sys/class/net/" + n.hostVeth); err != nil {
		return nil
	}
	return hostRun(ctx, "ip", "link", "del", n.hostVeth)
}
