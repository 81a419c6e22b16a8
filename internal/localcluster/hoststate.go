package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// HostState is what a cluster could leave behind on the host: mounts,
// network links, routes and namespaces, iptables rules, top-level cgroups,
// and the entries of the directories Kubernetes components write to by
// default. Take one before Start and one after Stop; Leftovers names every
// difference.
type HostState map[string][]string

// hostPaths are directories whose entries are recorded: where kubelet,
// containerd, runc and the CNI plugins write unless told otherwise.
var hostPaths = []string{"/run", "/var/run", "/var/lib", "/var/log", "/etc", "/opt", "/etc/cni", "/opt/cni",
	"/var/lib/cni", "/var/log/containers", "/var/log/pods", "/run/containerd", "/run/netns"}

// otherClusters matches names that another local cluster, running at the
// same time on this machine, may own (veths, cgroup roots, directories).
var otherClusters = regexp.MustCompile(`lc[0-9a-f]{6}[hn]|localcluster-[0-9a-f]{6}|localcluster-[0-9]+`)

// SnapshotHost records the host's state. Commands that are not installed
// (nft) record nothing.
func SnapshotHost() HostState {
	s := HostState{}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			s["mount"] = append(s["mount"], f[4])
		}
	}
	run := func(key string, argv ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := exec.LookPath(argv[0]); err != nil {
			return
		}
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		if err != nil {
			s[key] = append(s[key], "error: "+err.Error())
			return
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			// iptables-save's comments and counters change by themselves.
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			l = regexp.MustCompile(`\[\d+:\d+\]`).ReplaceAllString(l, "")
			if key == "link" { // "3: name@peer: <...> ... " -> name
				if f := strings.Fields(l); len(f) > 1 {
					l = strings.TrimSuffix(strings.Split(f[1], "@")[0], ":")
				}
			}
			s[key] = append(s[key], l)
		}
	}
	run("link", "ip", "-o", "link", "show")
	run("route", "ip", "route", "show", "table", "all")
	run("iptables", "iptables-save")
	run("ip6tables", "ip6tables-save")
	run("nft", "nft", "list", "ruleset")
	if cg, err := cgroupMounts(); err == nil {
		for _, m := range cg {
			entries, _ := os.ReadDir(m)
			for _, e := range entries {
				if e.IsDir() {
					s["cgroup"] = append(s["cgroup"], filepath.Join(m, e.Name()))
				}
			}
		}
	}
	for _, d := range hostPaths {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		s["dir"] = append(s["dir"], d)
		for _, e := range entries {
			s["path"] = append(s["path"], filepath.Join(d, e.Name()))
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "localcluster-*"))
	s["path"] = append(s["path"], tmp...)
	for k := range s {
		slices.Sort(s[k])
	}
	return s
}

// Leftovers lists what after has that before had not, except what belongs to
// another cluster than the one with id (empty: every cluster's counts).
func (before HostState) Leftovers(after HostState, id string) []string {
	var out []string
	for key, items := range after {
		for _, it := range items {
			if slices.Contains(before[key], it) {
				continue
			}
			if id != "" && otherClusters.MatchString(it) && !strings.Contains(it, id) {
				continue
			}
			out = append(out, fmt.Sprintf("%s: %s", key, it))
		}
	}
	slices.Sort(out)
	return out
}
