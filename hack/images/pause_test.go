package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPause runs the pause binary as PID 1 of a new PID namespace, as the
// pod sandbox is: a process started in that namespace whose parent exits
// is re-parented to pause, and pause reaps it when it exits (a zombie would
// stay); SIGTERM ends pause with status 0.
func TestPause(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("TestPause needs root (a new PID namespace and nsenter)")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Fatal("nsenter is missing: install the Debian package util-linux")
	}
	pause := buildProgram(t, "./cmd/pause")
	cmd := exec.Command(pause)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	// A file, not a pipe: Wait must not wait for the namespace's processes.
	out, err := os.Create(filepath.Join(t.TempDir(), "pause.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	pid := cmd.Process.Pid
	// pause must have installed its handlers before it gets signals: its
	// SigCgt in /proc shows SIGTERM caught.
	waitFor(t, 10*time.Second, "pause to catch SIGTERM", func() bool { return catches(pid, syscall.SIGTERM) })

	// An orphan in pause's namespace: sh starts sleep and exits at once
	// (sleep does not hold nsenter's output open, so nsenter returns now).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, nsenter, "--target", strconv.Itoa(pid), "--pid", "--", "/bin/sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & exit 0").CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v\n%s", err, b)
	}
	var orphan int
	waitFor(t, 10*time.Second, "the orphaned sleep to become pause's child", func() bool {
		for _, c := range children(t, pid) {
			if comm(c) == "sleep" {
				orphan = c
				return true
			}
		}
		return false
	})
	// sleep exits after 2 s; unreaped it would stay a zombie child of pause.
	waitFor(t, 15*time.Second, fmt.Sprintf("pause to reap its exited child %d", orphan), func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
		return os.IsNotExist(err)
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if err := waitErr; err != nil {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("pause after SIGTERM: %v (want exit status 0)\n%s", err, b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pause did not exit within 10 s of SIGTERM")
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// children lists the pids whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue // exited meanwhile
		}
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest) // state ppid ...
		if ok && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Split(s, "/")[2])
			out = append(out, n)
		}
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// catches reports whether pid has a handler for sig (SigCgt).
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
