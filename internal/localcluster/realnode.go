package localcluster

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RealNodeName is the name of the real node.
const RealNodeName = "local-node"

// Images the real node itself needs, built by hack/images (-local): the pod
// sandbox, CoreDNS, the volume provisioner and the provisioner's helper pods.
const (
	PauseImage       = "localhost/shop-platform/pause:1"
	CoreDNSImage     = "registry.k8s.io/coredns/coredns:v1.15.0"
	LocalPathImage   = "docker.io/rancher/local-path-provisioner:v0.0.30"
	HelperImage      = "docker.io/library/busybox:1.35"
	netpolQueue      = 100 // the NFQUEUE number kube-network-policies reads
	kubeletPort      = 10250
	containerdSocket = "containerd.sock"
)

// requiredImages are the images the node itself runs.
var requiredImages = []string{PauseImage, CoreDNSImage, LocalPathImage, HelperImage}

// nodeBinaries are the files a node binary directory must hold
// (hack/node-binaries.sh).
var nodeBinaries = []string{"runc", "containerd", "containerd-shim-runc-v2", "ctr",
	"cni/bridge", "cni/loopback", "cni/host-local", "cni/portmap", "kube-network-policies"}

// realNode is the one real node of a cluster: containerd, kubelet,
// kube-proxy and kube-network-policies in the namespaces of a holder
// process, pods on a CNI bridge.
type realNode struct {
	net        *nodeNet
	holder     *holder
	dir        string // <cluster dir>/node
	cgroupRoot string // /localcluster-<id> in every cgroup hierarchy
	socket     string
	kubelet    *process
	tokens     struct{ node, proxy, netpol string }

	kubeletCrt, kubeletKey                 string
	apiserverClientCrt, apiserverClientKey string
}

// checkRealNodeHost says what this host lacks for a real node.
func checkRealNodeHost(nodeBin string) error {
	if os.Geteuid() != 0 {
		return errors.New("localcluster: the real node needs root (containerd, network namespaces, cgroups), as kind needs Docker; run as root, or use fake nodes (Options.Mode = KwokNodes; `make demo DEMO_FLAGS=--nodes=kwok`)")
	}
	var missing []string
	for _, b := range []string{"ip", "nsenter", "unshare", "iptables", "sysctl", "sleep"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	for _, b := range nodeBinaries {
		if st, err := os.Stat(filepath.Join(nodeBin, b)); err != nil || st.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(nodeBin, b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("localcluster: the real node needs %s (hack/node-binaries.sh builds the node's programs and installs iptables)", strings.Join(missing, ", "))
	}
	return nil
}

// startHolder starts the process whose namespaces the node lives in, and
// binds the node's own /run, /var/lib and /var/log over the host's inside
// them: kubelet writes /var/log/containers, the runc shim /run/containerd,
// the CNI plugins /var/lib/cni, none of which can be moved by flags.
func (c *Cluster) startHolder(ctx context.Context) (*holder, error) {
	p, err := startProcess("node-holder", "unshare",
		[]string{"--net", "--mount", "--propagation", "private", "sleep", "infinity"}, c.dir, os.Environ())
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	h := &holder{proc: p}
	// unshare has exec'd sleep once /proc/<pid>/ns/net differs from ours.
	self, _ := os.Readlink("/proc/self/ns/net")
	if err := poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		if done, err := p.exited(); done {
			return false, procError(p, "exited: %v", err)
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.pid()))
		return err == nil && ns != self, nil
	}); err != nil {
		return nil, fmt.Errorf("localcluster: node namespaces: %w", err)
	}
	return h, nil
}

// startRealNode starts containerd, imports the images, and starts kubelet,
// kube-proxy and kube-network-policies. The control plane runs already.
func (c *Cluster) startRealNode(ctx context.Context, cs kubernetes.Interface) error {
	n := c.node
	env := childEnv(c.dir)
	// The shim finds runc and the CNI plugins on PATH as well as by config.
	env = append(env, "PATH="+c.opts.NodeBinDir+":"+os.Getenv("PATH"))
	nb := func(name string) string { return filepath.Join(c.opts.NodeBinDir, name) }
	for _, d := range []string{"run", "lib", "log", "containerd/root", "containerd/state", "cni/net.d", "cni/ipam", "kubelet", "volumes"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, m := range [][2]string{{"run", "/run"}, {"lib", "/var/lib"}, {"log", "/var/log"}} {
		if _, err := n.holder.run(ctx, "mount", "--no-mtab", "--bind", filepath.Join(n.dir, m[0]), m[1]); err != nil {
			return err
		}
	}
	if err := c.makeCgroupRoot(); err != nil {
		return err
	}

	// containerd
	cfg, err := c.writeContainerdConfig()
	if err != nil {
		return err
	}
	ctrd, err := c.startInNode("containerd", nb("containerd"), env, "--config", cfg)
	if err != nil {
		return err
	}
	if err := poll(ctx, 60*time.Second, func(context.Context) (bool, error) {
		if done, err := ctrd.exited(); done {
			return false, procError(ctrd, "exited: %v", err)
		}
		_, err := os.Stat(n.socket)
		return err == nil, nil
	}); err != nil {
		return procError(ctrd, "no socket %s: %v", n.socket, err)
	}
	c.logf("containerd ready")
	if err := c.importImages(ctx); err != nil {
		return err
	}

	// kubelet, kube-proxy and the policy enforcer, each with its own identity
	// (tokens written before kube-apiserver started).
	kubeletCfg, err := c.writeKubeletConfig()
	if err != nil {
		return err
	}
	kubeconfig, err := c.writeComponentKubeconfig("kubelet", n.tokens.node)
	if err != nil {
		return err
	}
	if n.kubelet, err = c.startInNode("kubelet", filepath.Join(c.opts.BinDir, "kubelet"), env,
		"--config="+kubeletCfg,
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+RealNodeName,
		"--node-ip="+n.net.nodeIP.String(),
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet/pki"),
		"--node-labels=topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=local",
		"--v=1",
	); err != nil {
		return err
	}
	proxyCfg, err := c.writeKubeProxyConfig()
	if err != nil {
		return err
	}
	if _, err := c.startInNode("kube-proxy", filepath.Join(c.opts.BinDir, "kube-proxy"), env, "--config="+proxyCfg, "--v=1"); err != nil {
		return err
	}
	if err := c.startNetworkPolicies(ctx, cs, env); err != nil {
		return err
	}
	return nil
}

// startInNode starts a long-running program in the node's namespaces.
func (c *Cluster) startInNode(name, bin string, env []string, args ...string) (*process, error) {
	argv := c.node.holder.command(append([]string{bin}, args...)...)
	p, err := c.start(name, argv[0], argv[1:]...)(env)
	if p != nil {
		p.inNode = true
	}
	return p, err
}

// makeCgroupRoot creates the kubelet's cgroup root in every cgroup hierarchy;
// cpuset needs its CPUs and memory nodes copied from the parent.
func (c *Cluster) makeCgroupRoot() error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		d := filepath.Join(m, c.node.cgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("localcluster: cgroup %s: %w", d, err)
		}
		if filepath.Base(m) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(m, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("localcluster: %s/%s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

func (c *Cluster) writeContainerdConfig() (string, error) {
	n := c.node
	cfg := fmt.Sprintf(`# containerd of the local cluster's real node (written by internal/localcluster)
version = 3
root = %[1]q
state = %[2]q
# Plugins that would write outside the cluster's directory or are not used.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  # The sandbox asks for oom_score_adj -998; without CAP_SYS_RESOURCE in
  # this VM only values >= ours are allowed.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[6]q
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`,
		filepath.Join(n.dir, "containerd/root"), filepath.Join(n.dir, "containerd/state"),
		n.socket, n.socket+".ttrpc", PauseImage,
		filepath.Join(c.opts.NodeBinDir, "runc"), filepath.Join(c.opts.NodeBinDir, "cni"),
		filepath.Join(n.dir, "cni/net.d"))
	path := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	// One bridge network with host-local addresses. Routes only to the
	// Service range and the host: no default route, so nothing a pod sends
	// can leave the machine (an exporter pointed at a SaaS fails at once).
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "localcluster",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": %q}, {"dst": %q}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.net.podCIDR, n.net.podGateway, n.net.serviceCIDR, netip4Prefix(n.net.hostIP, 30), filepath.Join(n.dir, "cni/ipam"))
	return path, os.WriteFile(filepath.Join(n.dir, "cni/net.d/10-localcluster.conflist"), []byte(cni), 0o644)
}

// importImages loads every image tarball into containerd's k8s.io namespace
// and checks that the node's own images are there.
func (c *Cluster) importImages(ctx context.Context) error {
	begin := time.Now()
	ctr := filepath.Join(c.opts.NodeBinDir, "ctr")
	for _, img := range c.opts.Images {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		out, err := exec.CommandContext(ictx, ctr, "--address", c.node.socket, "--namespace", "k8s.io",
			"images", "import", "--local", img).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("localcluster: import %s: %w\n%s", img, err, out)
		}
	}
	out, err := exec.CommandContext(ctx, ctr, "--address", c.node.socket, "--namespace", "k8s.io", "images", "list", "--quiet").Output()
	if err != nil {
		return fmt.Errorf("localcluster: list images: %w", err)
	}
	have := strings.Fields(string(out))
	c.images = have
	var missing []string
	for _, want := range requiredImages {
		if !containsString(have, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("localcluster: the node needs the images %s (build them with `cd hack/images && go run . -local`); it has %v", strings.Join(missing, ", "), have)
	}
	c.logf("imported %d image tarballs in %s", len(c.opts.Images), time.Since(begin).Round(100*time.Millisecond))
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func netip4Prefix(a interface{ String() string }, bits int) string {
	ip := net.ParseIP(a.String()).To4()
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(bits, 32)), Mask: net.CIDRMask(bits, 32)}).String()
}

// writeComponentKubeconfig writes a kubeconfig for a node component that
// authenticates with token.
func (c *Cluster) writeComponentKubeconfig(name, token string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: c.restConfig.Host, CertificateAuthorityData: c.pki.caCertPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: name}
	cfg.CurrentContext = "localcluster"
	path := filepath.Join(c.node.dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// kubeletCerts issues the kubelet's serving certificate for the node IP, so
// that kube-apiserver verifies it (logs, exec, port-forward), and the client
// certificate kube-apiserver presents to the kubelet.
func (c *Cluster) kubeletCerts() (servingCrt, servingKey, clientCrt, clientKey string, err error) {
	ip := net.ParseIP(c.node.net.nodeIP.String())
	servingCrt, servingKey, err = c.pki.issue("kubelet", pkix.Name{CommonName: "system:node:" + RealNodeName, Organization: []string{"system:nodes"}},
		x509.ExtKeyUsageServerAuth, []net.IP{ip}, []string{RealNodeName})
	if err != nil {
		return
	}
	clientCrt, clientKey, err = c.pki.issue("apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil)
	return
}

// prepareNodeIdentities writes the node components' tokens and the kubelet's
// certificates, before kube-apiserver starts (it reads its token file once).
func (c *Cluster) prepareNodeIdentities() error {
	n := c.node
	var err error
	if n.tokens.node, err = c.pki.addToken("system:node:"+RealNodeName, "system:nodes"); err != nil {
		return err
	}
	if n.tokens.proxy, err = c.pki.addToken("system:kube-proxy"); err != nil {
		return err
	}
	if n.tokens.netpol, err = c.pki.addToken(netpolUser); err != nil {
		return err
	}
	n.kubeletCrt, n.kubeletKey, n.apiserverClientCrt, n.apiserverClientKey, err = c.kubeletCerts()
	return err
}

// writeKubeletConfig writes the KubeletConfiguration: cgroupfs under the
// cluster's own cgroup root (cgroups v1 on these hosts, which 1.37 refuses
// unless told), webhook authentication and authorization against the API
// server, x509 client certificates from the cluster CA, pod logs inside the
// cluster's directory, and a resolv.conf without nameservers for pods that
// use the node's DNS (nothing outside the cluster is resolvable), and a
// 10 s pod sync (default 1 min), which is how soon an edited ConfigMap or
// Secret reaches the volumes that Prometheus's and Alertmanager's config
// reloaders watch.
func (c *Cluster) writeKubeletConfig() (string, error) {
	n := c.node
	crt, key := n.kubeletCrt, n.kubeletKey
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# no upstream: pods resolve only cluster names\n"), 0o644); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %[3]s
tlsPrivateKeyFile: %[4]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[5]s}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: %[6]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[7]s
clusterDomain: cluster.local
clusterDNS: [%[8]s]
resolvConf: %[9]s
podLogsDir: %[10]s
serializeImagePulls: false
syncFrequency: 10s
maxPods: 110
shutdownGracePeriod: 0s
evictionHard:
  memory.available: 200Mi
  nodefs.available: 5%%
  imagefs.available: 5%%
`, n.net.nodeIP, kubeletPort, crt, key, c.pki.caCertFile, n.cgroupRoot, n.socket,
		n.net.dnsServiceIP(), resolv, filepath.Join(n.dir, "pod-logs"))
	path := filepath.Join(n.dir, "kubelet.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// writeKubeProxyConfig: iptables mode in the node's namespace. Conntrack
// limits are global sysctls that a non-initial namespace cannot set: leave them.
func (c *Cluster) writeKubeProxyConfig() (string, error) {
	n := c.node
	kubeconfig, err := c.writeComponentKubeconfig("kube-proxy", n.tokens.proxy)
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %[1]s
hostnameOverride: %[2]s
bindAddress: %[3]s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: %[4]s
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, RealNodeName, n.net.nodeIP, n.net.podCIDR)
	path := filepath.Join(n.dir, "kube-proxy.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}
