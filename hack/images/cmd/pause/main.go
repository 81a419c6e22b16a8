// Command pause is the sandbox ("pause") container of every pod on the
// local cluster's node, in place of registry.k8s.io/pause: it holds the
// pod's namespaces and does nothing else. As PID 1 of a pod that shares its
// PID namespace it is the parent of every orphan, so it reaps zombie
// children on SIGCHLD. SIGTERM or SIGINT end it with status 0.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (shop-operator hack/images/cmd/pause)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1: only its own children are reaped")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	reap() // children that exited before Notify
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap() // signals coalesce: collect every exited child
			continue
		}
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
