package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/discovery"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

func newStatusCmd() *cobra.Command {
	var flags clusterFlags
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a Shop's children in the cluster as a tree, with their readiness",
		Long: `status reads the Shop NAME and every object labelled commerce.shopplatform.io/shop=NAME
in its namespace (of every resource type the cluster serves), and prints them as a tree
by owner reference, like kubectl tree: Shop -> Deployment -> ReplicaSet -> Pod, ...
READY and STATUS are computed with kstatus, as the operator does.`,
		Example: `  $CMD status demo -n shop
  $CMD status demo --context kind-dev`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.connect()
			if err != nil {
				return err
			}
			tree, err := shopTree(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return printTree(cmd.OutOrStdout(), tree, time.Now())
		},
	}
	flags.add(cmd.Flags())
	return cmd
}

// node is an object in the tree of a Shop.
type node struct {
	obj      *unstructured.Unstructured
	children []*node
}

// shopTree reads the Shop and its labelled children and arranges them by
// owner reference. Children whose owner is not among them hang off the Shop.
func shopTree(ctx context.Context, c *cluster, name string) (*node, error) {
	shop, _, err := c.shop(ctx, name)
	if err != nil {
		return nil, err
	}
	children, err := c.labelled(ctx, render.LabelShop+"="+name)
	if err != nil {
		return nil, err
	}
	root := &node{obj: shop}
	nodes := map[types.UID]*node{shop.GetUID(): root}
	for i := range children {
		if children[i].GetUID() != shop.GetUID() {
			nodes[children[i].GetUID()] = &node{obj: &children[i]}
		}
	}
	for uid, n := range nodes {
		if n == root {
			continue
		}
		parent := root
		for _, ref := range n.obj.GetOwnerReferences() {
			if p, ok := nodes[ref.UID]; ok && ref.UID != uid {
				parent = p
				if ref.Controller != nil && *ref.Controller {
					break
				}
			}
		}
		parent.children = append(parent.children, n)
	}
	sortTree(root)
	return root, nil
}

func sortTree(n *node) {
	slices.SortFunc(n.children, func(a, b *node) int {
		return cmp.Or(cmp.Compare(a.obj.GetKind(), b.obj.GetKind()), cmp.Compare(a.obj.GetName(), b.obj.GetName()))
	})
	for _, c := range n.children {
		sortTree(c)
	}
}

// labelled lists the objects with the label selector in the cluster's
// namespace, across every namespaced resource type that can be listed.
func (c *cluster) labelled(ctx context.Context, selector string) ([]unstructured.Unstructured, error) {
	lists, err := c.discovery.ServerPreferredNamespacedResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discovering resource types: %w", err)
	}
	var gvrs []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || r.Name == "events" {
				continue
			}
			gvrs = append(gvrs, gv.WithResource(r.Name))
		}
	}

	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		out   []unstructured.Unstructured
		errs  []error
		slots = make(chan struct{}, 8) // bounded concurrency
	)
	for _, gvr := range gvrs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			items, err := c.list(ctx, gvr, c.namespace, selector)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case apierrors.IsForbidden(err), apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err):
				// Not ours to read, or gone since discovery: not part of the tree.
			case err != nil:
				errs = append(errs, fmt.Errorf("listing %s: %w", gvr.GroupResource(), err))
			default:
				out = append(out, items...)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	// The same object may be served by two groups: keep one.
	seen := map[types.UID]bool{}
	return slices.DeleteFunc(out, func(u unstructured.Unstructured) bool {
		dup := seen[u.GetUID()]
		seen[u.GetUID()] = true
		return dup
	}), nil
}

// printTree prints the tree as a table: NAME (Kind/name, indented by owner),
// READY, STATUS (kstatus), AGE and, when not ready, kstatus's message.
func printTree(w io.Writer, root *node, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAMESPACE\tNAME\tREADY\tSTATUS\tAGE\tMESSAGE\n")
	var walk func(n *node, prefix, branch string)
	walk = func(n *node, prefix, branch string) {
		ready, status, message := readiness(n.obj)
		age := "-"
		if t := n.obj.GetCreationTimestamp(); !t.IsZero() {
			age = duration.HumanDuration(now.Sub(t.Time))
		}
		fmt.Fprintf(tw, "%s\t%s%s%s/%s\t%s\t%s\t%s\t%s\n", n.obj.GetNamespace(), prefix, branch, n.obj.GetKind(), n.obj.GetName(), ready, status, age, message)
		childPrefix := prefix
		switch branch {
		case "├─":
			childPrefix += "│ "
		case "└─":
			childPrefix += "  "
		}
		for i, c := range n.children {
			b := "├─"
			if i == len(n.children)-1 {
				b = "└─"
			}
			walk(c, childPrefix, b)
		}
	}
	walk(root, "", "")
	return tw.Flush()
}

// readiness is kstatus's view of an object: READY True when Current, "-"
// for objects without a status at all (ConfigMaps, Secrets, ...). A Shop is
// ready when its Ready condition says so for its current generation.
func readiness(u *unstructured.Unstructured) (ready, status, message string) {
	if u.GroupVersionKind().GroupKind() == shopv1.GroupVersion.WithKind("Shop").GroupKind() {
		return shopReadiness(u)
	}
	res, err := kstatus.Compute(u)
	if err != nil {
		return "Unknown", "Unknown", err.Error()
	}
	if res.Status == kstatus.CurrentStatus {
		if _, hasStatus := u.Object["status"]; !hasStatus {
			return "-", string(res.Status), ""
		}
		return "True", string(res.Status), ""
	}
	return "False", string(res.Status), res.Message
}

func shopReadiness(u *unstructured.Unstructured) (ready, status, message string) {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if observed < u.GetGeneration() {
		return "False", string(kstatus.InProgressStatus), fmt.Sprintf("the operator has not reconciled generation %d yet", u.GetGeneration())
	}
	ready, message = "Unknown", "no Ready condition"
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if c, ok := c.(map[string]any); ok && c["type"] == shopv1.ConditionReady {
			ready, _ = c["status"].(string)
			message, _ = c["message"].(string)
		}
	}
	res, err := kstatus.Compute(u)
	if err != nil {
		return ready, "Unknown", err.Error()
	}
	if ready == "True" && res.Status == kstatus.CurrentStatus {
		message = ""
	}
	return ready, string(res.Status), message
}
