package localcluster

import "syscall"

// sysProcAttr puts each child in its own process group (so Stop can signal
// the group) and asks the kernel to SIGKILL it when the parent dies.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// whole Go process; the Go runtime rarely retires threads, and Stop (or the
// test cleanup) is the normal path.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
