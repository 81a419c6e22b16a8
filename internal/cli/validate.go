package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shopplatform/shop-operator/internal/validate"
)

func newValidateCmd() *cobra.Command {
	var files, oldFiles []string
	var namespace string
	var fromCluster bool
	var conn clusterFlags
	cmd := &cobra.Command{
		Use:   "validate -f SHOP.yaml",
		Short: "Check Shops exactly as the API server does",
		Long: `validate checks the Shops in the files against the Shop CRD the way the API server
does on create: schema, defaults, CEL rules, unknown fields. With --old, each Shop is
checked as an update of the Shop of the same namespace and name in the old files, so
the rules that protect data (immutable storage class, Postgres version, shrinking
storage, managed <-> external) apply too. With --cluster, the old Shops are the ones
stored in the cluster (KUBECONFIG): "would the cluster accept this change?". It prints "shop/<name> is valid" for each
valid Shop, or the API server's messages and exits with code 1.`,
		Example: `  $CMD validate -f shop.yaml
  git show HEAD~1:shop.yaml > /tmp/old.yaml && $CMD validate -f shop.yaml --old /tmp/old.yaml
  $CMD validate -f shop.yaml --cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := readShops(files, cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if fromCluster && len(oldFiles) > 0 {
				return errors.New("--old and --cluster both name the old Shops: use one")
			}
			var olds map[string]*unstructured.Unstructured
			if fromCluster {
				if olds, err = storedShops(cmd.Context(), conn, docs, namespace); err != nil {
					return err
				}
			}
			if len(oldFiles) > 0 {
				oldDocs, err := readShops(oldFiles, cmd.InOrStdin(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				olds = map[string]*unstructured.Unstructured{}
				for _, d := range oldDocs {
					ns := d.obj.GetNamespace()
					if ns == "" {
						ns = namespace
					}
					olds[ns+"/"+d.obj.GetName()] = d.obj
				}
			}
			shops, err := validateShops(docs, olds, namespace, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			for _, s := range shops {
				fmt.Fprintf(cmd.OutOrStdout(), "shop/%s is valid\n", s.GetName())
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "files with Shops (YAML or JSON, several documents each); - reads stdin")
	cmd.Flags().StringSliceVar(&oldFiles, "old", nil, "files with the current Shops: validate the Shops as updates of these")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of Shops whose metadata has none")
	cmd.Flags().BoolVar(&fromCluster, "cluster", false, "validate the Shops as updates of the Shops stored in the cluster (when they exist)")
	conn.addConnection(cmd.Flags())
	return cmd
}

// storedShops reads the stored version of each Shop that exists in the cluster.
func storedShops(ctx context.Context, conn clusterFlags, docs []document, namespace string) (map[string]*unstructured.Unstructured, error) {
	c, err := conn.connect()
	if err != nil {
		return nil, err
	}
	olds := map[string]*unstructured.Unstructured{}
	for _, d := range docs {
		ns := cmp.Or(d.obj.GetNamespace(), namespace)
		stored, err := c.storedShop(ctx, ns, d.obj.GetName())
		if err != nil {
			return nil, fmt.Errorf("reading shop %s/%s: %w", ns, d.obj.GetName(), err)
		}
		if stored != nil {
			olds[ns+"/"+d.obj.GetName()] = stored
		}
	}
	return olds, nil
}

// validateShops validates every Shop (as an update of olds[namespace/name]
// when there is one) and returns them as the API server would store them.
// Every error is printed on stderr with the API server's message; the
// returned error then only carries the exit code.
func validateShops(docs []document, olds map[string]*unstructured.Unstructured, namespace string, stderr io.Writer) ([]*unstructured.Unstructured, error) {
	v := validate.ForShop()
	var out []*unstructured.Unstructured
	seen := map[string]string{}
	failed := 0
	for _, d := range docs {
		obj := d.obj.DeepCopy()
		if obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
		}
		key := obj.GetNamespace() + "/" + obj.GetName()
		if first, dup := seen[key]; dup && obj.GetName() != "" {
			fmt.Fprintf(stderr, "%s: shop %s is also in %s\n", d.source, key, first)
			failed++
			continue
		}
		seen[key] = d.source
		stored, errs := v.Validate(obj, olds[key])
		if len(errs) > 0 {
			fmt.Fprintf(stderr, "%s: %v\n", d.source, v.Error(obj, errs))
			failed++
			continue
		}
		out = append(out, stored)
	}
	if failed > 0 {
		return nil, silentError{fmt.Errorf("%d of %d Shops are invalid", failed, len(docs))}
	}
	return out, nil
}
