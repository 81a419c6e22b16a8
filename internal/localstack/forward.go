package localstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Forward serves a Service on 127.0.0.1: every connection to the returned
// address is relayed to the Service's cluster IP, so it goes through the
// cluster's own Service networking (kube-proxy's rules on the node) like a
// pod's would. It stops when ctx ends.
func Forward(ctx context.Context, cs kubernetes.Interface, ns, name string, port int32) (string, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == "None" {
		return "", fmt.Errorf("localstack: Service %s/%s has no cluster IP", ns, name)
	}
	target := net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); l.Close() }()
	go func() {
		defer wg.Wait()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay(ctx, in, target)
			}()
		}
	}()
	return l.Addr().String(), nil
}

// relay copies both ways until either side closes or ctx ends.
func relay(ctx context.Context, in net.Conn, target string) {
	defer in.Close()
	// A few tries: a first connection to a Service made Ready a moment ago
	// can be refused (the demo's first request was reset once in CI), and
	// the user would see a reset page.
	d := net.Dialer{Timeout: 10 * time.Second}
	var out net.Conn
	var err error
	for try := 0; try < 3; try++ {
		if out, err = d.DialContext(ctx, "tcp", target); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return
	}
	defer out.Close()
	stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
