//go:build !linux

package localcluster

import "syscall"

// sysProcAttr puts each child in its own process group so Stop can signal the
// group. Only Linux can also tie the child's life to the parent's.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
