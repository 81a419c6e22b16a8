package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	serviceCIDR         = "10.96.0.0/12"
	kubernetesServiceIP = "10.96.0.1"
	// DefaultStorageClass is the default StorageClass of the cluster; kwok's
	// volume stages provision and bind claims of this class.
	DefaultStorageClass = "kwok-volume"
	// FakeNodeAnnotation marks the Nodes that kwok manages.
	FakeNodeAnnotation = "kwok.x-k8s.io/node"
)

// NodeMode chooses what runs the pods.
type NodeMode string

const (
	// RealNode runs one real node: containerd, runc, kubelet, kube-proxy,
	// the CNI bridge, CoreDNS, kube-network-policies and
	// local-path-provisioner. Needs root. The default.
	RealNode NodeMode = "real"
	// KwokNodes runs fake nodes (kwok): pods are "Running" but nothing runs.
	// For scale tests with hundreds of pods.
	KwokNodes NodeMode = "kwok"
)

// Options configure Start.
type Options struct {
	// Mode is RealNode (default) or KwokNodes.
	Mode NodeMode
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kwok and kwok-stages/, and for a real node kubelet and
	// kube-proxy (see FindBinaries). Required.
	BinDir string
	// NodeBinDir holds the real node's programs (hack/node-binaries.sh, see
	// FindNodeBinaries). Required for a real node.
	NodeBinDir string
	// Images are OCI image tarballs imported into the real node's containerd
	// before Start returns (hack/images -local builds them; they must include
	// PauseImage, CoreDNSImage, LocalPathImage and HelperImage).
	Images []string
	// Dir is the working directory (certificates, etcd data, kubeconfig,
	// one log per process). Empty: a new temporary directory that Stop
	// removes unless KeepDir is set. A given Dir is never removed.
	Dir string
	// KeepDir keeps the temporary directory (logs, etcd data) after Stop.
	KeepDir bool
	// Log receives one line per start-up step. Nil discards them. The
	// processes' own output goes to <Dir>/<name>.log.
	Log io.Writer
	// Nodes is the number of fake nodes (default 2; KwokNodes only). Node i is named
	// kwok-node-<i> and is in zone "zone-<a+i>" (topology.kubernetes.io/zone).
	Nodes int
	// NodeResources is each node's capacity and allocatable; default 32 CPUs,
	// 128Gi memory, 250 pods.
	NodeResources corev1.ResourceList
	// StorageClasses are extra StorageClass names whose claims kwok binds, in
	// addition to the default class DefaultStorageClass.
	StorageClasses []string
	// Timeout bounds the whole start (default 3 minutes). Each step has its
	// own smaller bound as well.
	Timeout time.Duration
}

// Cluster is a running node-less cluster: a real control plane with fake
// nodes whose pods kwok pretends to run.
type Cluster struct {
	opts       Options
	dir        string
	removeDir  bool
	pki        *pki
	apiPort    int
	restConfig *rest.Config
	kubeconfig string
	procs      []*process // start order
	started    time.Duration
	node       *realNode // nil with kwok nodes
	images     []string  // what the real node's containerd holds

	stopOnce sync.Once
	stopErr  error
}

// skipAddons is for tests of the node alone.
var skipAddons = false

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and the nodes (a real node, or kwok's fake ones), creates the default
// StorageClass, and returns when the nodes are Ready, their add-ons serve and
// the controllers run. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	begin := time.Now()
	if opts.BinDir == "" {
		return nil, errors.New("localcluster: Options.BinDir is required (see FindBinaries)")
	}
	if opts.Mode == "" {
		opts.Mode = RealNode
	}
	real := opts.Mode == RealNode
	if err := checkBinDir(opts.BinDir, opts.Mode); err != nil {
		return nil, err
	}
	if real {
		if err := checkRealNodeHost(opts.NodeBinDir); err != nil {
			return nil, err
		}
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 2
	}
	if opts.Nodes > 16 {
		return nil, errors.New("localcluster: at most 16 nodes")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Minute
		if real {
			opts.Timeout = 6 * time.Minute
		}
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	c := &Cluster{opts: opts, dir: opts.Dir}
	prefix := "localcluster-"
	id := ""
	if real {
		id = newNodeID()
		prefix += id + "-"
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, err
		}
		c.removeDir = !opts.KeepDir
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.logf("start failed; stopping (logs in %s)", c.dir)
			c.removeDir = false // keep the logs the error points at
			_ = c.Stop()
		}
	}()
	c.logf("directory %s", c.dir)

	apiIP := "127.0.0.1"
	serviceRange := serviceCIDR
	var apiIPs []net.IP
	if real {
		c.node = &realNode{dir: filepath.Join(c.dir, "node"), cgroupRoot: "/localcluster-" + id}
		c.node.socket = filepath.Join(c.node.dir, containerdSocket)
		if err := os.MkdirAll(c.node.dir, 0o755); err != nil {
			return nil, err
		}
		if c.node.holder, err = c.startHolder(ctx); err != nil {
			return nil, err
		}
		nn, err := setUpNodeNet(ctx, id, c.node.holder)
		if err != nil {
			return nil, fmt.Errorf("localcluster: node network: %w", err)
		}
		c.node.net = nn
		c.logf("node network: host %s, node %s, pods %s, services %s (veth %s)", nn.hostIP, nn.nodeIP, nn.podCIDR, nn.serviceCIDR, nn.hostVeth)
		apiIP = nn.hostIP.String()
		serviceRange = nn.serviceCIDR.String()
		apiIPs = []net.IP{net.ParseIP(apiIP), net.ParseIP(nn.kubernetesServiceIP().String())}
	}

	if c.pki, err = newPKI(c.dir, apiIPs...); err != nil {
		return nil, fmt.Errorf("localcluster: generate certificates: %w", err)
	}
	if real {
		if err := c.prepareNodeIdentities(); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeer, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.apiPort = apiPort
	if err := c.writeKubeconfig(apiIP); err != nil {
		return nil, err
	}
	env := childEnv(c.dir)
	bin := func(name string) string { return filepath.Join(opts.BinDir, name) }

	// etcd
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd, err := c.start("etcd", bin("etcd"),
		"--name=localcluster",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=localcluster="+peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	)(env)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := c.waitHTTP(ctx, etcd, 30*time.Second, plain, etcdURL+"/health", ""); err != nil {
		return nil, err
	}

	// kube-apiserver
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + apiIP,
		"--advertise-address=" + apiIP,
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file=" + c.pki.servingCrt,
		"--tls-private-key-file=" + c.pki.servingKey,
		"--token-auth-file=" + c.pki.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.saPubFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=" + serviceRange,
		"--allow-privileged=true",
		"--profiling=false",
	}
	if real {
		apiArgs = append(apiArgs,
			// The kubelet is a node: the Node authorizer and NodeRestriction
			// hold it to its own node and pods.
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--kubelet-client-certificate="+c.node.apiserverClientCrt,
			"--kubelet-client-key="+c.node.apiserverClientKey,
			"--kubelet-certificate-authority="+c.pki.caCertFile,
			"--kubelet-preferred-address-types=InternalIP",
		)
	} else {
		apiArgs = append(apiArgs,
			"--authorization-mode=RBAC",
			// The default reconciler refuses a loopback advertise address.
			"--endpoint-reconciler-type=none",
		)
	}
	apiserver, err := c.start("kube-apiserver", bin("kube-apiserver"), apiArgs...)(env)
	if err != nil {
		return nil, err
	}
	tlsClient := c.httpsClient()
	if err := c.waitHTTP(ctx, apiserver, 90*time.Second, tlsClient,
		fmt.Sprintf("https://%s:%d/readyz", apiIP, apiPort), c.pki.token); err != nil {
		return nil, err
	}

	// The controllers, the scheduler and kwok need only the API server.
	kcm, err := c.start("kube-controller-manager", bin("kube-controller-manager"),
		"--kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--controllers=*",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+c.pki.saKeyFile,
		"--root-ca-file="+c.pki.caCertFile,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(c.dir, "kcm-certs"),
		"--profiling=false",
	)(env)
	if err != nil {
		return nil, err
	}
	sched, err := c.start("kube-scheduler", bin("kube-scheduler"),
		"--kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(c.dir, "scheduler-certs"),
		"--profiling=false",
	)(env)
	if err != nil {
		return nil, err
	}

	cs, err := kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return nil, err
	}
	var nodes []string
	var nodeProc *process
	if real {
		if err := c.startRealNode(ctx, cs); err != nil {
			return nil, err
		}
		nodes, nodeProc = []string{RealNodeName}, c.node.kubelet
	} else {
		// kwok's configuration: the Stage documents from the binary dir.
		stagesFile, err := c.writeStages()
		if err != nil {
			return nil, err
		}
		kwok, err := c.start("kwok", bin("kwok"),
			"--kubeconfig="+c.kubeconfig,
			"--config="+stagesFile,
			"--manage-nodes-with-annotation-selector="+FakeNodeAnnotation+"=fake",
			"--node-lease-duration-seconds=40",
		)(env)
		if err != nil {
			return nil, err
		}
		if err := c.createStorageClasses(ctx, cs); err != nil {
			return nil, err
		}
		if nodes, err = c.createNodes(ctx, cs); err != nil {
			return nil, err
		}
		nodeProc = kwok
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Their serving certificates are self-signed in their cert dirs; this
		// probe only asks "are you up", on loopback.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	if err := c.waitHTTP(ctx, kcm, 60*time.Second, insecure,
		fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), ""); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, sched, 60*time.Second, insecure,
		fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), ""); err != nil {
		return nil, err
	}
	if err := c.waitNodesReady(ctx, cs, nodeProc, nodes); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	// Pods need the namespace's ServiceAccount, which the controller-manager
	// creates: wait for it so callers can create workloads straight away.
	if err := c.waitDefaultServiceAccount(ctx, cs, kcm); err != nil {
		return nil, err
	}
	if real && !skipAddons {
		if err := c.installAddons(ctx, cs); err != nil {
			return nil, err
		}
		if err := c.waitAddons(ctx, cs); err != nil {
			return nil, err
		}
	}
	c.started = time.Since(begin)
	c.logf("ready in %s: %d nodes (%s), kubeconfig %s", c.started.Round(100*time.Millisecond), len(nodes), opts.Mode, c.kubeconfig)
	return c, nil
}

// RESTConfig returns a copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// KubeconfigPath is a kubeconfig file for the admin user
// (`kubectl --kubeconfig PATH get nodes`).
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// Dir is the working directory: certificates, etcd data and one log per
// process (<name>.log).
func (c *Cluster) Dir() string { return c.dir }

// ID names this cluster's real node on the host: its veth pair
// (lc<ID>h), its cgroup root (/localcluster-<ID>) and its directory
// (localcluster-<ID>-*). Empty with kwok nodes.
func (c *Cluster) ID() string {
	if c.node == nil {
		return ""
	}
	return strings.TrimPrefix(c.node.cgroupRoot, "/localcluster-")
}

// ServiceCIDR is the range Services get addresses from; the host routes it
// to the real node.
func (c *Cluster) ServiceCIDR() string {
	if c.node == nil {
		return serviceCIDR
	}
	return c.node.net.serviceCIDR.String()
}

// PodCIDR is the real node's pod range (empty with kwok nodes).
func (c *Cluster) PodCIDR() string {
	if c.node == nil {
		return ""
	}
	return c.node.net.podCIDR.String()
}

// HostIP is the host's end of the real node's veth (empty with kwok
// nodes): the API server listens there, and so may a test's server that the
// cluster's pods must reach (an alert webhook). Nothing beyond the host is
// reachable that way.
func (c *Cluster) HostIP() string {
	if c.node == nil {
		return ""
	}
	return c.node.net.hostIP.String()
}

// NodeDir is the real node's directory (containerd, kubelet, volumes).
func (c *Cluster) NodeDir() string {
	if c.node == nil {
		return ""
	}
	return c.node.dir
}

// StartupDuration is how long Start took.
func (c *Cluster) StartupDuration() time.Duration { return c.started }

// KeepDir makes Stop keep the working directory (for example when a test
// failed and its logs matter).
func (c *Cluster) KeepDir() { c.removeDir = false }

// Process is one running control-plane process.
type Process struct {
	Name    string
	PID     int
	RSS     int64 // resident set size in bytes when asked; 0 if unknown
	LogPath string
}

// Processes lists the processes in start order with their current RSS.
func (c *Cluster) Processes() []Process {
	out := make([]Process, 0, len(c.procs))
	for _, p := range c.procs {
		rss, _ := rssBytes(p.pid())
		out = append(out, Process{Name: p.name, PID: p.pid(), RSS: rss, LogPath: p.logPath})
	}
	return out
}

// Check returns an error, with the tail of its log, if any process has exited.
func (c *Cluster) Check() error {
	var errs []error
	for _, p := range c.procs {
		if done, err := p.exited(); done {
			errs = append(errs, procError(p, "exited: %v", err))
		}
	}
	return errors.Join(errs...)
}

// Stop stops every process (SIGTERM to its process group, SIGKILL after a few
// seconds), kwok and the controllers first, etcd last, then removes the
// temporary directory unless it is kept. Safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		// The node first: its pods and shims are no children of ours.
		if err := c.stopRealNode(); err != nil {
			errs = append(errs, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		// Everything after kube-apiserver at once, then the API server, then etcd.
		stopAll := func(ps []*process) {
			for _, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.stop(10 * time.Second); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
		}
		for i := len(c.procs); i > 0; {
			// Group by layer: index 0 etcd, 1 kube-apiserver, 2.. the rest.
			lo := i - 1
			if lo >= 2 {
				lo = 2
			}
			stopAll(c.procs[lo:i])
			i = lo
		}
		if c.removeDir {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.opts.Log, "localcluster: "+format+"\n", args...)
}

// start returns a function that starts a process with the given environment
// and records it for Stop.
func (c *Cluster) start(name, bin string, args ...string) func(env []string) (*process, error) {
	return func(env []string) (*process, error) {
		p, err := startProcess(name, bin, args, c.dir, env)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.logf("started %s (pid %d, log %s)", name, p.pid(), p.logPath)
		return p, nil
	}
}

// childEnv is our environment without anything that could point the
// processes at another cluster, with HOME in the cluster dir (kwok reads
// ~/.kwok/kwok.yaml when it exists).
func childEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "KUBECONFIG", "HOME", "ETCDCTL_API", "ETCD_DATA_DIR":
			continue
		}
		if strings.HasPrefix(k, "ETCD_") { // etcd reads its flags from ETCD_* too
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir)
}

func (c *Cluster) httpsClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caCertPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

func (c *Cluster) writeKubeconfig(apiIP string) error {
	server := fmt.Sprintf("https://%s:%d", apiIP, c.apiPort)
	c.restConfig = &rest.Config{
		Host:            server,
		BearerToken:     c.pki.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caCertPEM},
		QPS:             100,
		Burst:           200,
		// No Timeout: it becomes the http.Client's and would cut watches.
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.pki.caCertPEM}
	cfg.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{Token: c.pki.token}
	cfg.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: adminUser, Namespace: "default"}
	cfg.CurrentContext = "localcluster"
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return clientcmd.WriteToFile(*cfg, c.kubeconfig)
}

// waitHTTP polls url until it answers 200, p exits, or the bound passes.
func (c *Cluster) waitHTTP(ctx context.Context, p *process, bound time.Duration, client *http.Client, url, token string) error {
	begin := time.Now()
	var last string
	err := poll(ctx, bound, func(ctx context.Context) (bool, error) {
		if done, err := p.exited(); done {
			return false, procError(p, "exited while starting: %v", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true, nil
		}
		last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		return false, nil
	})
	if err != nil {
		var pe *pollError
		if errors.As(err, &pe) {
			why := fmt.Sprintf("within %s", bound)
			if ctx.Err() != nil {
				why = "before the start timeout (Options.Timeout) or the caller's context ran out"
			}
			return procError(p, "not ready at %s %s (last answer: %s)", url, why, last)
		}
		return err
	}
	c.logf("%s ready after %s", p.name, time.Since(begin).Round(10*time.Millisecond))
	return nil
}

// pollError is returned by poll when the bound or the context ran out.
type pollError struct{ cause error }

func (e *pollError) Error() string { return "timed out: " + e.cause.Error() }

// poll calls cond every 250ms until it returns true or an error, or until
// bound (or ctx) runs out, then returns a *pollError.
func poll(ctx context.Context, bound time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return &pollError{cause: ctx.Err()}
		case <-t.C:
		}
	}
}

func defaultNodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
}
