// Package localcluster runs a real, node-less Kubernetes cluster on loopback
// for `make demo` and end-to-end tests: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, built from the Go module
// proxy by hack/kube-binaries.sh and started as child processes in a
// temporary directory.
//
//	c, err := localcluster.Start(ctx, localcluster.Options{BinDir: dir, Log: os.Stderr})
//	defer c.Stop()
//	cfg := c.RESTConfig()          // admin, verifies TLS against the cluster's CA
//	kubeconfig := c.KubeconfigPath() // for kubectl
//
// In tests, StartForTest(t) skips unless $SHOP_E2E is set, finds or builds
// the binaries (FindBinaries; $SHOP_KUBE_BIN overrides), starts the cluster and
// stops it in t.Cleanup, keeping the logs when the test failed.
//
// # How it is wired
//
// Everything listens on 127.0.0.1 on free ports. Start generates, in Go, a CA
// and a kube-apiserver serving certificate signed by it, a service-account key
// pair and a static token for one admin user in system:masters. etcd runs with
// --unsafe-no-fsync (throwaway data). kube-apiserver runs with
// --endpoint-reconciler-type=none (it refuses a loopback advertise address
// otherwise), RBAC and the default admission plugins. kube-controller-manager
// (--controllers=*, so the garbage collector, deployment, replicaset,
// statefulset, job, cronjob, serviceaccount and serviceaccount-token
// controllers run) and kube-scheduler use --leader-elect=false and the admin
// kubeconfig. kwok watches Nodes annotated kwok.x-k8s.io/node=fake and plays
// its Stages, read from <BinDir>/kwok-stages: it makes those Nodes Ready and
// keeps their leases, and moves every Pod scheduled on them to Running and
// Ready at once (and deletes it when it is being deleted). No container ever
// runs: images are never pulled, probes never run.
//
// The fake nodes (Options.Nodes, default 2, named kwok-node-<i>) have no
// taints, 32 CPUs, 128Gi memory, 500Gi ephemeral storage and 250 pods each
// (Options.NodeResources), a /20 pod CIDR each, and the labels
// kubernetes.io/hostname and topology.kubernetes.io/zone=zone-a, zone-b, ...,
// so pod topology spread and anti-affinity constraints are meaningful.
//
// # Persistent volumes
//
// Nothing provisions volumes in a node-less cluster, and a Pod whose claim is
// unbound is unschedulable, so StatefulSets with volumeClaimTemplates would
// never run. Start therefore creates a default StorageClass named
// "kwok-volume" (provisioner kwok.x-k8s.io/volume, Immediate binding), and kwok
// plays its volume stages (kustomize/stage/volume/fast in the kwok module,
// copied by hack/kube-binaries.sh): for each claim of that class it creates a
// hostPath PersistentVolume (never written to), binds claim and volume, and
// deletes the volume once the claim is gone. Claims that name no class get the
// default class from the DefaultStorageClass admission plugin. A claim naming
// another class stays Pending unless that name is listed in
// Options.StorageClasses, which creates the class and widens the stages'
// selector to it.
//
// # Lifetime
//
// Each process runs in its own process group and, on Linux, gets SIGKILL when
// its parent dies (Pdeathsig). Stop sends SIGTERM to kwok, the scheduler and
// the controller-manager, then to kube-apiserver, then to etcd, each followed by
// SIGKILL after 10 seconds, and removes the temporary directory. Every wait in
// Start is bounded; its error carries the last lines of the failing process's
// log (<Dir>/<name>.log).
package localcluster
