package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// shopsResource is the Shop API's resource.
var shopsResource = shopv1.GroupVersion.WithResource("shops")

// clusterFlags choose the cluster as kubectl does: KUBECONFIG or --kubeconfig,
// --context, and --namespace (default: the context's namespace).
type clusterFlags struct {
	kubeconfig, context, namespace string
}

func (f *clusterFlags) add(fs *pflag.FlagSet) {
	f.addConnection(fs)
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the Shop (default: the context's namespace)")
}

// addConnection adds the flags that choose the cluster, not the namespace.
func (f *clusterFlags) addConnection(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context to use")
}

// cluster is a connection to the cluster holding a Shop.
type cluster struct {
	dynamic   dynamic.Interface
	discovery discovery.DiscoveryInterface
	namespace string
}

func (f *clusterFlags) connect() (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, err
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = loader.Namespace(); err != nil {
			return nil, err
		}
	}
	return newCluster(cfg, ns)
}

func newCluster(cfg *rest.Config, namespace string) (*cluster, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 50, 100 // status lists every resource type once
	// Listing every type touches deprecated ones (v1 Endpoints): not news to the user.
	cfg.WarningHandler = rest.NoWarnings{}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &cluster{dynamic: dyn, discovery: disc, namespace: namespace}, nil
}

// storedShop reads a Shop as it is stored, or nil when there is none.
func (c *cluster) storedShop(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	u, err := c.dynamic.Resource(shopsResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return u, err
}

// shop reads a Shop, as it is stored and as a typed object.
func (c *cluster) shop(ctx context.Context, name string) (*unstructured.Unstructured, *shopv1.Shop, error) {
	u, err := c.dynamic.Resource(shopsResource).Namespace(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("shop %s/%s: %w", c.namespace, name, err)
	}
	typed := &shopv1.Shop{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
		return nil, nil, fmt.Errorf("shop %s/%s: %w", c.namespace, name, err)
	}
	return u, typed, nil
}

// list lists one resource with a label selector, in namespace ("" = all).
func (c *cluster) list(ctx context.Context, gvr schema.GroupVersionResource, namespace, selector string) ([]unstructured.Unstructured, error) {
	l, err := c.dynamic.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}
