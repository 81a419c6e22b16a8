package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopRealNode kills every process of the node — the components, the
// containerd shims and every container — and removes its cgroups and its
// veth. The node's mounts and its network namespace (bridge, pod veths,
// iptables rules, conntrack) end with the last process in them.
func (c *Cluster) stopRealNode() error {
	n := c.node
	if n == nil || n.holder == nil {
		return nil
	}
	var errs []error
	mntNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", n.holder.pid()))
	deadline := time.Now().Add(15 * time.Second)
	for {
		pids := n.processes(mntNS)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("localcluster: node processes %v still alive after SIGKILL", pids))
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Reap the ones that are our children (the components and the holder).
	for _, p := range c.procs {
		if p.name == "node-holder" || p.inNode {
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				errs = append(errs, fmt.Errorf("localcluster: %s (pid %d) not reaped", p.name, p.pid()))
			}
		}
	}
	if err := removeCgroups(n.cgroupRoot); err != nil {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.net.tearDown(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// processes lists the pids of the node: every process in its mount
// namespace (components, shims; containers have their own) and every
// process in its cgroups (containers).
func (n *realNode) processes(mntNS string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if mntNS != "" {
			if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && ns == mntNS {
				pids = append(pids, pid)
				continue
			}
		}
		if cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err == nil && inCgroupRoot(string(cg), n.cgroupRoot) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// inCgroupRoot reports whether a /proc/<pid>/cgroup listing puts the process
// under root in any hierarchy.
func inCgroupRoot(listing, root string) bool {
	for _, line := range strings.Split(listing, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && (parts[2] == root || strings.HasPrefix(parts[2], root+"/")) {
			return true
		}
	}
	return false
}

// cgroupMounts lists the mount points of every cgroup hierarchy (v1
// controllers, named ones, and the v2 unified mount).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID parent major:minor root mountpoint options ... - fstype source superopts
		fields := strings.Fields(s.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if t := fields[sep+1]; t == "cgroup" || t == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	return out, s.Err()
}

// removeCgroups removes root and everything below it in every hierarchy,
// deepest first (a cgroup directory is removed with rmdir, once empty of
// processes and children).
func removeCgroups(root string) error {
	if root == "" || root == "/" {
		return nil
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		top := filepath.Join(m, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			var err error
			for range 50 { // a cgroup empties a moment after its last process dies
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("localcluster: remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
